// Qwen3 chat template: rendered text against the reference Jinja renderer's fixtures (needs no tokenizer
// files), a few cases spelled out by hand, and the errors of parse_chat_messages.
#include "common/error.h"
#include "test_util.h"
#include "tokenizer/tokenizer.h"

namespace gqa {
namespace {

std::string render(const std::string& messages_json, bool generation_prompt = true, bool thinking = true) {
  ChatOptions opts;
  opts.add_generation_prompt = generation_prompt;
  opts.enable_thinking = thinking;
  return render_qwen3_chat(parse_chat_messages(messages_json, "test"), opts);
}

std::string parse_error(const std::string& messages_json) {
  try {
    parse_chat_messages(messages_json, "msgs.json");
  } catch (const Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "no error for " << messages_json;
  return "";
}

TEST(ChatTemplate, MatchesReferenceRendering) {
  auto rows = test::read_jsonl(std::string(GQA_FIXTURES_DIR) + "/tokenizer/chat_cases.jsonl");
  ASSERT_GE(rows.size(), 20u);
  for (size_t i = 0; i < rows.size(); ++i) {
    const auto& row = rows[i];
    std::string got = render(row["messages"].dump(), row["add_generation_prompt"], row["enable_thinking"]);
    EXPECT_EQ(got, row["text"].get<std::string>())
        << "chat case " << i << " (line " << i + 1 << "): " << row["messages"].dump() << "\n  got      "
        << test::quoted(got) << "\n  expected " << test::quoted(row["text"]);
  }
}

TEST(ChatTemplate, GenerationPromptAndThinkingSwitch) {
  std::string user = R"([{"role": "user", "content": "hi"}])";
  EXPECT_EQ(render(user), "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n");
  EXPECT_EQ(render(user, true, false),
            "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n");
  EXPECT_EQ(render(user, false, false), "<|im_start|>user\nhi<|im_end|>\n");
}

TEST(ChatTemplate, ThinkingKeptOnlyAfterTheLastQuery) {
  // History turns lose their <think> block; the turn after the last user query keeps it.
  std::string msgs = R"([
    {"role": "user", "content": "q1"},
    {"role": "assistant", "content": "<think>\nr1\n</think>\n\na1"},
    {"role": "user", "content": "q2"},
    {"role": "assistant", "content": "a2", "reasoning_content": "\nr2\n"}])";
  EXPECT_EQ(render(msgs, false),
            "<|im_start|>user\nq1<|im_end|>\n"
            "<|im_start|>assistant\na1<|im_end|>\n"
            "<|im_start|>user\nq2<|im_end|>\n"
            "<|im_start|>assistant\n<think>\nr2\n</think>\n\na2<|im_end|>\n");
}

TEST(ChatTemplate, ToolResultsShareOneUserTurn) {
  std::string msgs = R"([
    {"role": "user", "content": "weather?"},
    {"role": "assistant", "content": "checking"},
    {"role": "tool", "content": "18C"},
    {"role": "tool", "content": "cloudy"}])";
  EXPECT_EQ(render(msgs),
            "<|im_start|>user\nweather?<|im_end|>\n"
            "<|im_start|>assistant\nchecking<|im_end|>\n"
            "<|im_start|>user\n<tool_response>\n18C\n</tool_response>\n<tool_response>\ncloudy\n</tool_response><|im_end|>\n"
            "<|im_start|>assistant\n");
}

TEST(ChatTemplate, ParseErrorsNameSourceAndIndex) {
  EXPECT_EQ(parse_error(R"([{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
                            {"role": "user", "content": 3}])"),
            "[chat] msgs.json: message 2: 'content' must be a string");
  EXPECT_EQ(parse_error(R"([{"role": "robot", "content": "a"}])"),
            "[chat] msgs.json: message 0: role 'robot' is not one of system, user, assistant, tool");
  EXPECT_EQ(parse_error(R"([{"content": "a"}])"), "[chat] msgs.json: message 0: 'role' must be a string");
  EXPECT_EQ(parse_error(R"([{"role": "assistant", "content": "", "tool_calls": []}])"),
            "[chat] msgs.json: message 0: field 'tool_calls' is not supported (only role, content, reasoning_content)");
  EXPECT_EQ(parse_error(R"([{"role": "user", "content": "", "reasoning_content": "x"}])"),
            "[chat] msgs.json: message 0: 'reasoning_content' is only allowed on assistant messages");
  EXPECT_EQ(parse_error(R"({"role": "user"})"), "[chat] msgs.json: expected a JSON list of messages");
  EXPECT_EQ(parse_error("[]"), "[chat] msgs.json: the message list is empty");
  EXPECT_EQ(parse_error("[1]"), "[chat] msgs.json: message 0: must be an object");
  EXPECT_EQ(parse_error("[{").rfind("[chat] msgs.json: invalid JSON", 0), 0u);
  EXPECT_THROW(render_qwen3_chat({}, ChatOptions{}), Error);
}

}  // namespace
}  // namespace gqa
