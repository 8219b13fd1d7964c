// `gqa-evolve generate`: streams a model's continuation of a prompt, then its speed and peak memory.
#include <nlohmann/json.hpp>

#include <cstdio>
#include <filesystem>
#include <memory>
#include <optional>

#include "cli/commands.h"
#include "cli/engine_setup.h"
#include "common/error.h"
#include "engine/cuda/cuda_engine.h"
#include "engine/generate.h"
#include "programs/loader.h"
#include "tokenizer/tokenizer.h"

namespace gqa::cli {

namespace {

std::vector<int32_t> parse_ids(const std::string& s) {
  std::vector<int32_t> ids;
  size_t i = 0;
  while (i <= s.size()) {
    size_t j = s.find(',', i);
    if (j == std::string::npos) j = s.size();
    std::string item = s.substr(i, j - i);
    size_t used = 0;
    long long v = -1;
    try {
      v = std::stoll(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used == 0 || used != item.size() || v < 0 || v > INT32_MAX)
      fail("generate", "--prompt-ids: '{}' is not a token id (expected comma-separated non-negative integers)", item);
    ids.push_back(static_cast<int32_t>(v));
    i = j + 1;
  }
  return ids;
}

}  // namespace

Runner add_generate(CLI::App& app) {
  struct Opts {
    std::string model, prompt, prompt_ids, device = "auto", attention, cuda_arch;
    bool chat = false, json = false, ignore_eos = false, enable_thinking = true;
    int64_t max_tokens = 128;
    SamplingParams sampling;
    CudaFlags cuda;
  };
  auto o = std::make_shared<Opts>();
  app.add_option("--model", o->model, "HF model directory (default: the random Qwen3-0.6B, made on first use)");
  auto* prompt = app.add_option("--prompt", o->prompt, "prompt text");
  auto* ids = app.add_option("--prompt-ids", o->prompt_ids, "prompt as comma-separated token ids (no tokenizer needed)");
  prompt->excludes(ids);
  app.add_flag("--chat", o->chat, "wrap --prompt as a user turn of the chat template, with the generation prompt");
  app.add_flag("--enable-thinking,!--disable-thinking", o->enable_thinking, "with --chat: thinking on (default) or off");
  app.add_option("--max-tokens", o->max_tokens, "most tokens to generate")->capture_default_str()->check(CLI::NonNegativeNumber);
  app.add_option("--temperature", o->sampling.temperature, "sampling temperature; 0 is greedy")->capture_default_str();
  app.add_option("--top-k", o->sampling.top_k, "keep the k most likely tokens (0: all)")->capture_default_str();
  app.add_option("--top-p", o->sampling.top_p, "keep the smallest set with this probability mass")->capture_default_str();
  app.add_option("--seed", o->sampling.seed, "sampling seed")->capture_default_str();
  app.add_option("--device", o->device, "cpu, cuda, or auto (cuda when this build has it and a GPU is present)")
      ->capture_default_str()
      ->check(CLI::IsMember({"auto", "cpu", "cuda"}));
  app.add_flag("--ignore-eos", o->ignore_eos, "keep generating past end tokens (benchmarks)");
  app.add_flag("--json", o->json, "print one JSON object: prompt_ids, token_ids, text and statistics");
  app.add_option("--attention", o->attention,
                 "attention program (.cpp for --device cpu, .cu for cuda), compiled with the cache: its host entry runs "
                 "every attention call, its device entry (cuda) the persistent decode step's; its call count is reported")
      ->check(CLI::ExistingFile);
  app.add_option("--cuda-arch", o->cuda_arch, "with --attention on cuda: sm_XY to compile for (default: the GPU's)");
  add_cuda_flags(app, o->cuda, /*trace=*/true);
  return [o, prompt, ids]() {
    if (!*prompt && !*ids) fail("generate", "give --prompt TEXT or --prompt-ids 1,2,3");
    if (o->chat && !*prompt) fail("generate", "--chat needs --prompt");
    std::string dir = o->model.empty() ? ensure_default_model() : o->model;

    std::optional<Tokenizer> tok;
    if (std::filesystem::exists(dir + "/tokenizer.json")) tok.emplace(Tokenizer::load(dir));
    std::vector<int32_t> prompt_ids;
    if (*ids) {
      prompt_ids = parse_ids(o->prompt_ids);
    } else {
      if (!tok) fail("generate", "{}: no tokenizer.json, so --prompt cannot be tokenized; use --prompt-ids", dir);
      std::string text = o->prompt;
      if (o->chat) {
        ChatOptions copts;
        copts.enable_thinking = o->enable_thinking;
        text = render_qwen3_chat({ChatMessage{"user", o->prompt, "", false}}, copts);
      }
      prompt_ids = tok->encode(text);
    }

    OpenedEngine opened = open_engine(dir, o->device, o->cuda);
    std::unique_ptr<Engine> engine = std::move(opened.engine);
    std::optional<ProgramHandle> program;
    Engine::DecodeProgramLink link;
    if (!o->attention.empty()) {
      program = load_program_for(o->attention, opened.cuda, o->cuda_arch, "generate", "--attention");
      link = install_program(*engine, *program, o->attention);
    }
    GenerateOptions gopts;
    gopts.max_tokens = o->max_tokens;
    gopts.sampling = o->sampling;
    gopts.ignore_stop_tokens = o->ignore_eos;
    for (int64_t id : engine->config().eos_token_ids) gopts.stop_tokens.push_back(static_cast<int32_t>(id));
    if (tok)
      for (const char* name : {"<|im_end|>", "<|endoftext|>"})
        if (int32_t id = tok->token_id(name); id >= 0) gopts.stop_tokens.push_back(id);

    std::optional<StreamDecoder> stream;
    if (tok && !o->json) stream.emplace(*tok);
    auto on_token = [&](int32_t id) {
      if (o->json) return;
      if (stream) {
        std::string piece = stream->push(id);
        std::fwrite(piece.data(), 1, piece.size(), stdout);
      } else {
        std::printf("%d ", id);
      }
      std::fflush(stdout);
    };
    GenerateResult r = generate(*engine, prompt_ids, gopts, on_token);
    const auto& s = r.stats;
    const size_t peak = peak_rss_bytes();
    if (o->json) {
      nlohmann::json j{{"prompt_ids", prompt_ids},
                       {"token_ids", r.tokens},
                       {"device", engine->device_name()},
                       {"prompt_tokens", s.prompt_tokens},
                       {"generated_tokens", s.generated_tokens},
                       {"prefill_seconds", s.prefill_seconds},
                       {"decode_seconds", s.decode_seconds},
                       {"prefill_tokens_per_second", s.prefill_tokens_per_second()},
                       {"decode_tokens_per_second", s.decode_tokens_per_second()},
                       {"peak_memory_bytes", peak},
                       {"peak_device_memory_bytes", s.peak_device_memory_bytes},
                       {"decode_path", s.decode_path},
                       {"stop_reason", s.stop_reason}};
      j["text"] = tok ? nlohmann::json(tok->decode(r.tokens)) : nlohmann::json(nullptr);
      if (opened.cuda) {
        j["decode_layout"] = decode_layout_name(cuda_decode_layout(*engine));
        j["decode_plan"] = cuda_decode_plan(*engine);
      }
      if (program) {
        j["attention_program"] = {{"path", o->attention},
                                  {"calls", engine->attention_program_calls()},
                                  {"host_entry", program->program != nullptr},
                                  {"device_entry", !program->lto.empty()},
                                  {"compile_cached", program->cached()},
                                  {"compile_seconds", program->compile_seconds()},
                                  {"key", program->program ? program->compile.key : program->device.key}};
        if (!program->lto.empty())
          j["attention_program"]["device_link"] = {{"seconds", link.seconds}, {"cached", link.cached}};
      }
      std::printf("%s\n", j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
      return 0;
    }
    if (stream) {
      std::string rest = stream->flush();
      std::fwrite(rest.data(), 1, rest.size(), stdout);
    }
    std::string gpu_mem;
    if (s.peak_device_memory_bytes > 0) gpu_mem = fmt::format(", GPU {:.2f} GiB", s.peak_device_memory_bytes / 1073741824.0);
    if (opened.cuda) gpu_mem += fmt::format(", {} decode step", decode_layout_name(cuda_decode_layout(*engine)));
    std::printf("\n\n[%s] prompt: %lld tokens, %.1f tok/s | generated: %lld tokens, %.2f tok/s (%s) | peak memory %.2f GiB%s\n",
                engine->device_name().c_str(), static_cast<long long>(s.prompt_tokens), s.prefill_tokens_per_second(),
                static_cast<long long>(s.generated_tokens), s.decode_tokens_per_second(), s.stop_reason.c_str(),
                peak / 1073741824.0, gpu_mem.c_str());
    if (opened.cuda) std::printf("decode plan: %s\n", cuda_decode_plan(*engine).c_str());
    if (program)
      std::printf("[attention program] %s: %llu calls (%s%s; compile %s%s)\n", o->attention.c_str(),
                  static_cast<unsigned long long>(engine->attention_program_calls()),
                  program->program ? "host entry" : "", program->lto.empty() ? "" : program->program ? ", device entry" :
                  "device entry", program->cached() ? "cached" : fmt::format("{:.1f} s", program->compile_seconds()).c_str(),
                  program->lto.empty() ? "" : link.cached ? ", device link cached" :
                  fmt::format(", device link {:.1f} s", link.seconds).c_str());
    return 0;
  };
}

}  // namespace gqa::cli
