// Tokenizer speed on one core: encode MB/s of generated mixed English text (cold and warm BPE cache),
// decode MB/s, and load time. Not a test; run `bench_tokenizer [tokenizer_dir] [text_file]`.
#include <chrono>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "common/error.h"
#include "tokenizer/tokenizer.h"

namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// English-like prose: common words drawn with Zipf-like weights, a share of rare made-up words (which
// miss the BPE cache as real rare words do), capitals, numbers, punctuation, quotes, contractions, line
// breaks, and a little code and non-ASCII text.
std::string mixed_english(size_t bytes, uint32_t seed) {
  static const char* common[] = {
      "the", "of", "and", "to", "a", "in", "is", "that", "for", "it", "as", "was", "with", "be", "by", "on",
      "not", "he", "this", "are", "or", "his", "from", "at", "which", "but", "have", "an", "had", "they",
      "you", "were", "their", "one", "all", "we", "can", "her", "has", "there", "been", "if", "more", "when",
      "will", "would", "who", "so", "no", "model", "attention", "kernel", "memory", "bandwidth", "query",
      "cache", "tokens", "sequence", "performance", "measured", "results", "between", "however", "because",
      "different", "important", "example", "information", "government", "development", "university",
      "people", "through", "should", "system", "number", "without", "another", "world", "years", "before"};
  static const char* extras[] = {"don't", "it's", "We'll", "THEY'RE", "e.g.", "i.e.", "(see below)",
                                 "\"quoted\"", "3.14", "2024", "1,024", "50%", "x = f(y);", "naïve",
                                 "café", "Zürich", "—", "…", "東京", "🙂"};
  std::mt19937 rng(seed);
  std::vector<double> weights;
  for (size_t i = 0; i < std::size(common); ++i) weights.push_back(1.0 / double(i + 1));
  std::discrete_distribution<size_t> zipf(weights.begin(), weights.end());
  std::uniform_real_distribution<double> u(0, 1);
  std::string out;
  bool sentence_start = true;
  while (out.size() < bytes) {
    std::string w;
    double r = u(rng);
    if (r < 0.08) {
      int len = 4 + int(rng() % 8);
      for (int k = 0; k < len; ++k) w += char('a' + rng() % 26);
    } else if (r < 0.13) {
      w = extras[rng() % std::size(extras)];
    } else {
      w = common[zipf(rng)];
    }
    if (sentence_start && w[0] >= 'a' && w[0] <= 'z') w[0] = char(w[0] - 32);
    out += w;
    sentence_start = false;
    double p = u(rng);
    if (p < 0.06) {
      out += ". ";
      sentence_start = true;
    } else if (p < 0.1) {
      out += ", ";
    } else if (p < 0.11) {
      out += ".\n\n";
      sentence_start = true;
    } else {
      out += ' ';
    }
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    std::string dir = argc > 1 ? argv[1] : GQA_TOKENIZER_DIR;
    auto t0 = Clock::now();
    gqa::Tokenizer tok = gqa::Tokenizer::load(dir);
    std::printf("load: %.2f s (%s)\n", seconds_since(t0), dir.c_str());

    std::string text = argc > 2 ? gqa::read_file(argv[2], "bench") : mixed_english(8 << 20, 1234);
    // Encode in document-sized chunks, as a server would see requests.
    const size_t chunk = 16 << 10;
    auto encode_all = [&] {
      size_t tokens = 0;
      for (size_t i = 0; i < text.size();) {
        size_t end = std::min(text.size(), i + chunk);
        while (end < text.size() && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80) ++end;
        tokens += tok.encode(std::string_view(text).substr(i, end - i)).size();
        i = end;
      }
      return tokens;
    };
    double mb = double(text.size()) / 1e6;
    t0 = Clock::now();
    size_t tokens = encode_all();
    double cold = seconds_since(t0);
    t0 = Clock::now();
    encode_all();
    double warm = seconds_since(t0);
    std::printf("text: %.1f MB, %zu tokens (%.2f bytes/token)\n", mb, tokens, double(text.size()) / double(tokens));
    std::printf("encode: %.1f MB/s first pass, %.1f MB/s second pass (one thread)\n", mb / cold, mb / warm);

    auto ids = tok.encode(text);
    t0 = Clock::now();
    std::string back = tok.decode(ids);
    std::printf("decode: %.1f MB/s\n", double(back.size()) / 1e6 / seconds_since(t0));
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
}
