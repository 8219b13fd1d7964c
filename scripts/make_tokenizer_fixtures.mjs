// Writes tests/fixtures/tokenizer/{encode_cases,chat_cases}.jsonl with the independent JS tokenizer
// @lenml/tokenizers (and @huggingface/jinja for the chat template), from assets/qwen3-tokenizer/.
// Run from the repository root:
//   (cd scripts/tokenizer-fixtures && npm ci) && node scripts/make_tokenizer_fixtures.mjs
// Deterministic: the same package versions give byte-identical files.
import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, "..");
const require = createRequire(path.join(here, "tokenizer-fixtures", "package.json"));
const { TokenizerLoader } = require("@lenml/tokenizers");
// @lenml/tokenizers bundles an old Jinja engine that cannot parse Qwen3's template
// (`content.split('</think>')[-1]`), so the template is rendered with the current @huggingface/jinja,
// the engine transformers.js uses, with the same variables apply_chat_template passes.
const { Template } = require("@huggingface/jinja");

const tokDir = process.argv[2] ?? path.join(root, "assets", "qwen3-tokenizer");
const outDir = process.argv[3] ?? path.join(root, "tests", "fixtures", "tokenizer");
const tokenizerJSON = JSON.parse(fs.readFileSync(path.join(tokDir, "tokenizer.json"), "utf8"));
const tokenizerConfig = JSON.parse(fs.readFileSync(path.join(tokDir, "tokenizer_config.json"), "utf8"));
const tok = TokenizerLoader.fromPreTrained({ tokenizerJSON, tokenizerConfig });
const encode = (text) => Array.from(tok.encode(text, { add_special_tokens: false }));

// The reference must itself look right before anything is written.
function expectIds(text, ids) {
  const got = encode(text);
  if (JSON.stringify(got) !== JSON.stringify(ids)) {
    console.error(`reference check failed for ${JSON.stringify(text)}: got ${JSON.stringify(got)}, expected ${JSON.stringify(ids)}`);
    process.exit(1);
  }
}
expectIds("Hello world", [9707, 1879]);
expectIds("<|im_start|>user\nhi<|im_end|>", [151644, 872, 198, 6023, 151645]);
expectIds(" ", [220]);
expectIds("\n", [198]);

// mulberry32: a small seeded PRNG, so the cases never change between runs.
function mulberry32(seed) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = seed;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const rand = mulberry32(20250611);
const pick = (xs) => xs[Math.floor(rand() * xs.length)];
const int = (lo, hi) => lo + Math.floor(rand() * (hi - lo + 1));

const words = {
  english: ["the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog", "Hello", "World", "tokenizer",
    "attention", "Grouped", "query", "KV-cache", "isn't", "e-mail", "U.S.A.", "naïve", "café", "résumé"],
  latin: ["Ærøskøbing", "Straße", "Größe", "señor", "niño", "żółć", "Łódź", "Tiếng", "Việt", "façade", "Ångström",
    "crème", "brûlée", "İstanbul", "ağaç", "Dvořák", "þorn", "ðæt", "ĳssel"],
  cyrillic: ["Привет", "мир", "Москва", "ёжик", "Українська", "їжак", "Ґрунт", "Беларусь", "ЎЗБЕК"],
  greek: ["Καλημέρα", "κόσμε", "ΑΘΗΝΑ", "ψυχή", "ῥυθμός", "Ἀθῆναι", "ϐ", "λόγος"],
  arabic: ["مرحبا", "بالعالم", "العربية", "كِتَابٌ", "ﻻ", "١٢٣٤", "إنشاء"],
  hebrew: ["שלום", "עולם", "עִבְרִית", "ירושלים"],
  devanagari: ["नमस्ते", "दुनिया", "हिन्दी", "क्षत्रिय", "१२३", "ॐ"],
  thai: ["สวัสดี", "ชาวโลก", "ภาษาไทย", "กรุงเทพมหานคร"],
  cjk: ["你好", "世界", "中文分词", "機械学習", "東京タワー", "ひらがな", "カタカナ", "漢字", "𠀋", "𪚲", "龍"],
  hangul: ["안녕하세요", "세계", "한국어", "토크나이저", "ㄱㄴㄷ"],
  other: ["Հայերեն", "ქართული", "አማርኛ", "ᏣᎳᎩ", "ᠮᠣᠩᠭᠣᠯ", "ꦗꦮ", "བོད་ཡིག", "සිංහල", "தமிழ்", "ગુજરાતી"],
};
const emoji = ["😀", "👍", "👍🏽", "👋🏿", "❤️", "🔥", "🚀", "🎉", "👨‍👩‍👧‍👦", "👩🏽‍💻", "🏳️‍🌈", "🏴‍☠️",
  "🇫🇷", "🇯🇵", "🇺🇸🇩🇪", "1️⃣", "#️⃣", "☺︎", "🫠", "🧑‍🤝‍🧑", "🤷‍♀️", "👁️‍🗨️"];
// Decomposed and otherwise non-NFC sequences, so NFC changes the input.
const decomposed = ["e\u0301", "a\u0308", "n\u0303", "A\u030A", "\u212B", "\u2126", "o\u0302\u0301",
  "\u1E9B\u0323", "q\u0307\u0323", "\u1100\u1161\u11A8", "\u1112\u1161\u11AB", "\u0415\u0308", "\u0340",
  "\u0344", "\u0958", "\uFB2A", "Cafe\u0301", "re\u0301sume\u0301", "\u0301start", "x\u0300\u0301\u0302"];
const spaces = [" ", "  ", "   ", "\t", "\t\t", "\n", "\n\n", "\n\n\n", "\r\n", "\r\n\r\n", " \n", "  \n  ",
  "\n ", " \t ", "\u00A0", "\u3000", "\u2009", "\r", "    "];
const numbers = ["0", "7", "42", "123", "2024", "3.14159", "1,000,000", "-17", "1e-9", "0x1F", "٣٤٥", "²³",
  "½", "Ⅻ", "₁₂", "12345678901234567890"];
const punct = [".", ",", "!", "?", "...", "!!!", "?!", "—", "–", "«", "»", "“", "”", "‘", "’", "…", "(", ")",
  "[", "]", "{", "}", ";", ":", "@", "#", "$", "%", "^", "&", "*", "~", "`", "|", "\\", "/", "<", ">", "==",
  "->", "=>", "::", "'", "\"", "''", "'''"];
const contractions = ["don't", "DON'T", "Don'T", "We'Ll", "we'll", "WE'LL", "it's", "IT'S", "It'S", "I'm",
  "I'M", "they're", "THEY'RE", "you've", "YOU'VE", "he'd", "HE'D", "'s", "'S", "'t", "'ll", "'Re", "'vE"];
const code = ["def f(x):\n    return x ** 2\n", "for (int i = 0; i < n; ++i) {\n\tsum += a[i];\n}",
  "<div class=\"main\">Hi</div>", "$ ls -la | grep foo", "{\"key\": [1, 2, {\"x\": null}]}",
  "SELECT * FROM t WHERE id = 3;", "#include <vector>\nint main() { return 0; }\n", "a_b = c->d[i]++;",
  "if x != None:\n        pass", "fn main() -> Result<(), Box<dyn Error>> {}", "x = y // 2  # floor",
  "    \n    indented\n\n\n", "printf(\"%d\\n\", x);"];
const addedTokens = tokenizerJSON.added_tokens.map((t) => t.content);
const specials = [...addedTokens, "<|im_start|>user\nhi<|im_end|>", "<|im_start|>system\nYou are helpful.<|im_end|>\n",
  "<think>\n\n</think>\n\n", "<|im_start", "im_end|>", "<|endoftext|><|endoftext|>", "< |im_end| >",
  "<tool_call>\n{\"name\": \"f\"}\n</tool_call>", "<|IM_END|>"];

function piece() {
  const r = rand();
  if (r < 0.25) return pick(words[pick(Object.keys(words))]);
  if (r < 0.33) return pick(emoji);
  if (r < 0.41) return pick(decomposed);
  if (r < 0.5) return pick(numbers);
  if (r < 0.6) return pick(punct);
  if (r < 0.67) return pick(contractions);
  if (r < 0.72) return pick(code);
  if (r < 0.78) return pick(specials);
  if (r < 0.86) return pick(spaces);
  return pick(words.english);
}
function randomText() {
  const n = int(1, 24);
  let s = "";
  for (let i = 0; i < n; ++i) {
    const sep = rand() < 0.6 ? " " : rand() < 0.5 ? "" : pick(spaces);
    s += (i ? sep : "") + piece();
  }
  if (rand() < 0.15) s += pick(spaces);  // trailing whitespace
  if (rand() < 0.1) s = pick(spaces) + s;  // leading whitespace
  return s;
}

const fixed = [
  "", "Hello world", "Hello, world!", " leading space", "trailing space ", "  two leading", "a  b   c    d",
  "\n", "\n\n", "\r\n", "line1\nline2\r\nline3\n\n\nline4", "tab\tseparated\tvalues", "  \n  \n", "    ",
  "DON'T stop", "We'Ll see", "I'M here, YOU'RE there", "it's John's", "''quoted''", "rock 'n' roll",
  "1234567890", "3.14 and 2.71", "v1.2.3-beta+build.5", "x=1;y=2", "Hello👋world", "👨‍👩‍👧‍👦👨‍👩‍👧‍👦",
  "🇫🇷🇩🇪🇯🇵", "caf\u00e9 vs cafe\u0301", "\u212B\u2126", "\u1100\u1161\u11A8", "\u0301", "e\u0301\u0301\u0301",
  "<|im_start|>user\nhi<|im_end|>", "<|im_start|>assistant\n<think>\nhmm\n</think>\n\nok<|im_end|>",
  "text<|endoftext|>more", "<|endoftext|>", "<think></think>", "< think >", "<|im_start|><|im_end|>",
  "你好，世界！", "こんにちは世界", "안녕하세요 세계", "Привет, мир!", "مرحبا بالعالم", "שלום עולם", "नमस्ते दुनिया",
  "สวัสดีชาวโลก", "Γειά σου Κόσμε", "mixed English 中文 and русский", "ALL CAPS SENTENCE.", "snake_case_name",
  "CamelCaseName", "https://example.com/path?q=1&r=2#frag", "user@example.com", "C:\\Windows\\System32",
  "def f(x):\n    return x\n", "\t\tindented with tabs", "a\u00A0b\u3000c\u2009d", "end with newline\n",
  "numbers: 1 22 333 4444 55555", "¡Hola! ¿Qué tal?", "«Bonjour»", "…", "—dash—", "😀😀😀😀",
];
const longEnglish =
  "The quick brown fox jumps over the lazy dog. Grouped-query attention shares each key/value head among " +
  "several query heads, which shrinks the KV cache without hurting quality much. In 2023, models such as " +
  "Llama 2 70B adopted it; Qwen3 uses 16 query heads and 8 KV heads. \"Don't forget,\" she said, \"it's " +
  "the memory bandwidth that matters at decode time!\"\n\nSecond paragraph:\n  - item one\n  - item two\n";

const cases = [...fixed, longEnglish, longEnglish.repeat(3).toUpperCase()];
while (cases.length < 1200) cases.push(randomText());

fs.mkdirSync(outDir, { recursive: true });
// "nfc" (ICU's NFC, given where it differs from the text) is what decode(encode(text)) must give back.
const encLines = cases.map((text) => {
  const nfc = text.normalize("NFC");
  return JSON.stringify(nfc === text ? { text, ids: encode(text) } : { text, nfc, ids: encode(text) });
});
fs.writeFileSync(path.join(outDir, "encode_cases.jsonl"), encLines.join("\n") + "\n");

// Conversations covering every branch of the template outside its `tools` section.
const conversations = [
  { messages: [{ role: "user", content: "Hello!" }] },
  { messages: [{ role: "system", content: "You are a helpful assistant." }, { role: "user", content: "What is 2+2?" }] },
  { messages: [
    { role: "system", content: "Be brief." },
    { role: "user", content: "Hi" },
    { role: "assistant", content: "Hello! How can I help?" },
    { role: "user", content: "Tell me a joke." },
  ] },
  { messages: [
    { role: "user", content: "What is GQA?" },
    { role: "assistant", content: "<think>\nThe user asks about GQA.\n</think>\n\nGrouped-query attention." },
    { role: "user", content: "And MQA?" },
  ] },
  { add_generation_prompt: false, messages: [
    { role: "user", content: "Solve x+1=3" },
    { role: "assistant", content: "<think>\n\nx = 3 - 1\n\n</think>\n\n\nx = 2" },
  ] },
  { add_generation_prompt: false, messages: [
    { role: "user", content: "Plain answer please" },
    { role: "assistant", content: "Sure, here it is." },
  ] },
  { messages: [
    { role: "user", content: "Q1" },
    { role: "assistant", content: "A1", reasoning_content: "Thinking about Q1." },
    { role: "user", content: "Q2" },
    { role: "assistant", content: "A2", reasoning_content: "\nThinking about Q2.\n" },
  ], add_generation_prompt: false },
  { messages: [
    { role: "user", content: "What's the weather in Paris?" },
    { role: "assistant", content: "I'll check the weather." },
    { role: "tool", content: "{\"temp\": 18, \"sky\": \"cloudy\"}" },
    { role: "tool", content: "{\"humidity\": 70}" },
    { role: "assistant", content: "<think>\nCombine both results.\n</think>\n\nIt is 18°C and cloudy." },
    { role: "user", content: "Thanks!" },
  ] },
  { messages: [
    { role: "user", content: "Run the tool" },
    { role: "assistant", content: "<think>\nneed tool\n</think>\n\nCalling it." },
    { role: "tool", content: "result 1" },
    { role: "assistant", content: "<think>\nneed another\n</think>\n\nCalling again." },
    { role: "user", content: "<tool_response>\nresult 2\n</tool_response>" },
  ] },
  { messages: [
    { role: "user", content: "first" },
    { role: "system", content: "A system message in the middle." },
    { role: "assistant", content: "<think>old reasoning</think>kept answer" },
    { role: "user", content: "second" },
    { role: "assistant", content: "no think tags here" },
  ], add_generation_prompt: false },
  { messages: [{ role: "tool", content: "orphan tool output" }, { role: "user", content: "ok?" }] },
  { messages: [
    { role: "system", content: "Réponds en français. 你好 👋" },
    { role: "user", content: "Ça va ? e\u0301\n\n  spaced  " },
    { role: "assistant", content: "", reasoning_content: null },
    { role: "user", content: "" },
  ] },
  { messages: [
    { role: "user", content: "multi <think> tags" },
    { role: "assistant", content: "<think>a</think>\n<think>b</think>\n\nfinal" },
  ], add_generation_prompt: false },
];

const specialTokens = {};
for (const key of ["bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token"]) {
  const v = tokenizerConfig[key];
  if (typeof v === "string") specialTokens[key] = v;
}
const template = new Template(tokenizerConfig.chat_template);
const chatLines = [];
for (const conv of conversations) {
  for (const enable_thinking of [true, false]) {
    const add_generation_prompt = conv.add_generation_prompt ?? true;
    const text = template.render({ messages: conv.messages, add_generation_prompt, enable_thinking, ...specialTokens });
    chatLines.push(JSON.stringify({ messages: conv.messages, add_generation_prompt, enable_thinking, text, ids: encode(text) }));
  }
}
fs.writeFileSync(path.join(outDir, "chat_cases.jsonl"), chatLines.join("\n") + "\n");
console.log(`wrote ${encLines.length} encode cases and ${chatLines.length} chat cases to ${path.relative(root, outDir)}`);
