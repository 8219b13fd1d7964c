// safetensors tests: write -> parse -> read round trips for each dtype, and one test per malformed
// header, each checking the exact problem reported (file name, problem, tensor).
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>

#include "model/safetensors.h"
#include "model_test_util.h"

namespace gqa {
namespace {

using testing::TempDir;

// u64 little-endian header length, the header text, then `data_bytes` bytes of data.
std::string raw_file(const std::string& header, size_t data_bytes = 0) {
  std::string out(8, '\0');
  uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>(n >> (8 * i));
  out += header;
  out.append(data_bytes, '\x11');
  return out;
}

std::string parse_error(const std::string& bytes) {
  return testing::error_of([&] {
    parse_safetensors_header(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), "bad.safetensors");
  });
}

std::vector<uint8_t> pattern(size_t n, uint8_t salt) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint8_t>(i * 31 + salt);
  return v;
}

class RoundTrip : public ::testing::TestWithParam<DType> {};

TEST_P(RoundTrip, WriteParseRead) {
  const DType dt = GetParam();
  TempDir tmp;
  const size_t es = dtype_size(dt);
  auto a = pattern(3 * 5 * es, 1), b = pattern(7 * es, 2), c = pattern(1 * es, 3);
  std::vector<TensorToWrite> tensors = {
      {"layer.weight", dt, {3, 5}, a.data()},
      {"bias", dt, {7}, b.data()},
      {"scalar", dt, {}, c.data()},
      {"empty", dt, {0, 4}, nullptr},
  };
  std::string path = tmp.file("x.safetensors");
  write_safetensors(path, tensors, {{"format", "pt"}, {"note", "round trip"}});
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));

  SafetensorsFile f(path);
  const SafetensorsHeader& h = f.header();
  EXPECT_EQ(h.data_offset % 8, 0u) << "header must be padded to a multiple of 8 bytes";
  EXPECT_EQ(h.metadata.at("format"), "pt");
  EXPECT_EQ(h.metadata.at("note"), "round trip");
  ASSERT_EQ(h.tensors.size(), 4u);
  // Sorted by offset = the given order, laid out contiguously from 0.
  EXPECT_EQ(h.tensors[0].name, "layer.weight");
  EXPECT_EQ(h.tensors[0].begin, 0u);
  EXPECT_EQ(h.tensors[1].name, "bias");
  EXPECT_EQ(h.tensors[1].begin, h.tensors[0].end);
  EXPECT_EQ(h.tensors[2].name, "scalar");
  EXPECT_EQ(h.tensors[3].name, "empty");
  EXPECT_EQ(h.tensors[3].end, (15 + 7 + 1) * es);
  EXPECT_EQ(std::filesystem::file_size(path), h.data_offset + h.tensors[3].end);

  const std::vector<std::vector<uint8_t>*> want = {&a, &b, &c};
  for (size_t i = 0; i < 3; ++i) {
    Tensor t = f.tensor(h.tensors[i]);
    EXPECT_EQ(t.dtype, dt);
    EXPECT_EQ(t.shape, tensors[i].shape);
    ASSERT_EQ(t.nbytes(), want[i]->size());
    EXPECT_EQ(std::memcmp(t.data, want[i]->data(), t.nbytes()), 0) << t.name;
  }
  EXPECT_EQ(f.tensor(h.tensors[2]).numel(), 1);
  EXPECT_EQ(f.tensor(h.tensors[3]).numel(), 0);
}

INSTANTIATE_TEST_SUITE_P(AllDTypes, RoundTrip, ::testing::Values(DType::BF16, DType::F16, DType::F32),
                         [](const auto& info) { return std::string(dtype_name(info.param)); });

TEST(SafetensorsWrite, StreamedMatchesInMemoryWriter) {
  TempDir tmp;
  auto a = pattern(4 * 6 * 2, 9), b = pattern(10 * 4, 4);
  std::vector<TensorToWrite> tensors = {{"a", DType::BF16, {4, 6}, a.data()}, {"b", DType::F32, {10}, b.data()}};
  write_safetensors(tmp.file("plain"), tensors);
  std::vector<TensorSpec> specs = {{"a", DType::BF16, {4, 6}}, {"b", DType::F32, {10}}};
  write_safetensors_streamed(tmp.file("streamed"), specs, [&](size_t i, void* out, size_t n) {
    ASSERT_EQ(n, i == 0 ? a.size() : b.size());
    std::memcpy(out, i == 0 ? a.data() : b.data(), n);
  });
  EXPECT_EQ(testing::read_bytes(tmp.file("plain")), testing::read_bytes(tmp.file("streamed")));
}

TEST(SafetensorsWrite, FailedWriteLeavesNoFile) {
  TempDir tmp;
  std::string path = tmp.file("x.safetensors");
  std::vector<TensorSpec> specs = {{"a", DType::F32, {4}}};
  EXPECT_ERROR_CONTAINS(write_safetensors_streamed(path, specs, [](size_t, void*, size_t) { fail("test", "boom"); }),
                        "[test] boom");
  EXPECT_FALSE(std::filesystem::exists(path));
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
}

TEST(SafetensorsWrite, RejectsDuplicateNames) {
  TempDir tmp;
  float x = 0;
  EXPECT_ERROR_CONTAINS(write_safetensors(tmp.file("d"), {{"a", DType::F32, {1}, &x}, {"a", DType::F32, {1}, &x}}),
                        "tensor 'a' given twice");
}

TEST(SafetensorsParse, EmptyHeaderAndEmptyTensorsAreValid) {
  EXPECT_EQ(parse_error(raw_file("{}      ")), "<no error>");
  // A zero-byte tensor owns no bytes, so sitting inside another tensor's range is not an overlap.
  EXPECT_EQ(parse_error(raw_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                                 R"("z":{"dtype":"F32","shape":[0],"data_offsets":[4,4]}})",
                                 8)),
            "<no error>");
}

TEST(SafetensorsParse, ErrorsNameFileAndTensor) {
  std::string msg = parse_error(raw_file(R"({"w":{"dtype":"I8","shape":[1],"data_offsets":[0,1]}})", 1));
  EXPECT_EQ(msg, "[safetensors] bad.safetensors: unsupported dtype 'I8' (supported: BF16, F16, F32) (tensor 'w')");
}

TEST(SafetensorsFile, MissingFileNamesPath) {
  TempDir tmp;
  EXPECT_ERROR_CONTAINS(SafetensorsFile(tmp.file("nope.safetensors")),
                        "[safetensors] " + tmp.file("nope.safetensors") + ": cannot open");
}

TEST(SafetensorsFile, MalformedFileNamesPath) {
  TempDir tmp;
  testing::write_bytes(tmp.file("short.safetensors"), "abc");
  EXPECT_ERROR_CONTAINS(SafetensorsFile(tmp.file("short.safetensors")),
                        "[safetensors] " + tmp.file("short.safetensors") + ": file is 3 bytes");
}

struct Malformed {
  const char* label;
  std::string bytes;
  std::string expected;  // substring of the message after "[safetensors] bad.safetensors: "
};

std::string entry(const std::string& body, const std::string& name = "w") {
  return "{\"" + name + "\":" + body + "}";
}

std::vector<Malformed> malformed_cases() {
  std::string huge_len(8, '\xff');
  return {
      {"empty_file", "", "file is 0 bytes, too short for the 8-byte header length"},
      {"truncated_length", std::string("\x02\0\0", 3), "file is 3 bytes, too short"},
      {"header_past_end", raw_file("{}").substr(0, 8) + "{", "header length 2 runs past the end of the file (9 bytes)"},
      {"header_length_max_u64", huge_len + "{}", "header length 18446744073709551615 runs past the end"},
      {"bad_json", raw_file("{\"w\": {"), "header is not valid JSON: parse error at line 1, column 8"},
      {"bad_utf8", raw_file("{\"\xff\": 1}"), "header is not valid JSON"},
      {"number_overflow", raw_file(R"({"w":{"dtype":"F32","shape":[1e400],"data_offsets":[0,4]}})", 4),
       "header is not valid JSON"},
      {"not_object", raw_file("[1, 2]"), "header must be a JSON object, got array"},
      {"entry_not_object", raw_file(entry("5")), "entry must be an object, got integer (tensor 'w')"},
      {"missing_dtype", raw_file(entry(R"({"shape":[1],"data_offsets":[0,4]})"), 4), "missing 'dtype' (tensor 'w')"},
      {"missing_shape", raw_file(entry(R"({"dtype":"F32","data_offsets":[0,4]})"), 4), "missing 'shape' (tensor 'w')"},
      {"missing_offsets", raw_file(entry(R"({"dtype":"F32","shape":[1]})"), 4), "missing 'data_offsets' (tensor 'w')"},
      {"dtype_not_string", raw_file(entry(R"({"dtype":4,"shape":[1],"data_offsets":[0,4]})"), 4),
       "dtype must be a string, got integer (tensor 'w')"},
      {"dtype_i8", raw_file(entry(R"({"dtype":"I8","shape":[1],"data_offsets":[0,1]})"), 1),
       "unsupported dtype 'I8' (supported: BF16, F16, F32) (tensor 'w')"},
      {"dtype_f64", raw_file(entry(R"({"dtype":"F64","shape":[1],"data_offsets":[0,8]})"), 8),
       "unsupported dtype 'F64'"},
      {"unknown_key", raw_file(entry(R"({"dtype":"F32","shape":[1],"data_offsets":[0,4],"x":1})"), 4),
       "unknown key 'x' (expected dtype, shape, data_offsets) (tensor 'w')"},
      {"shape_not_array", raw_file(entry(R"({"dtype":"F32","shape":3,"data_offsets":[0,12]})"), 12),
       "shape must be an array, got integer (tensor 'w')"},
      {"negative_dim", raw_file(entry(R"({"dtype":"F32","shape":[2,-3],"data_offsets":[0,4]})"), 4),
       "shape dimension is negative (-3) (tensor 'w')"},
      {"float_dim", raw_file(entry(R"({"dtype":"F32","shape":[1.5],"data_offsets":[0,4]})"), 4),
       "shape dimension must be an integer, got float (tensor 'w')"},
      {"shape_product_overflow",
       raw_file(entry(R"({"dtype":"F32","shape":[4294967296,4294967296,16],"data_offsets":[0,4]})"), 4),
       "has more elements than fit in 64 bits (tensor 'w')"},
      {"shape_bytes_overflow",
       raw_file(entry(R"({"dtype":"F32","shape":[4611686018427387904],"data_offsets":[0,4]})"), 4),
       "shape [4611686018427387904] is too large (tensor 'w')"},
      {"dim_above_int64", raw_file(entry(R"({"dtype":"F32","shape":[18446744073709551615],"data_offsets":[0,4]})"), 4),
       "shape dimension 18446744073709551615 is too large"},
      {"offsets_not_pair", raw_file(entry(R"({"dtype":"F32","shape":[1],"data_offsets":[0,4,8]})"), 8),
       "data_offsets must be an array [begin, end], got 3 elements (tensor 'w')"},
      {"offsets_negative", raw_file(entry(R"({"dtype":"F32","shape":[1],"data_offsets":[-4,0]})"), 8),
       "data_offsets begin is negative (-4) (tensor 'w')"},
      {"offsets_reversed", raw_file(entry(R"({"dtype":"F32","shape":[1],"data_offsets":[8,4]})"), 8),
       "data_offsets [8, 4] have begin > end (tensor 'w')"},
      {"size_mismatch", raw_file(entry(R"({"dtype":"F32","shape":[2],"data_offsets":[0,4]})"), 8),
       "data_offsets [0, 4] span 4 bytes but F32 [2] needs 8 (tensor 'w')"},
      {"offsets_past_end", raw_file(entry(R"({"dtype":"BF16","shape":[4],"data_offsets":[4,12]})"), 10),
       "data_offsets end 12 is past the end of the file (data section is 10 bytes) (tensor 'w')"},
      {"offsets_u64_max",
       raw_file(entry(R"({"dtype":"F32","shape":[1],"data_offsets":[18446744073709551612,18446744073709551615]})"), 4),
       "span 3 bytes but F32 [1] needs 4"},
      {"overlap",
       raw_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                12),
       "data_offsets [4, 12] overlap tensor 'a' [0, 8] (tensor 'b')"},
      {"duplicate_tensor",
       raw_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                R"("a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                8),
       "appears twice in the header (tensor 'a')"},
      {"duplicate_entry_key", raw_file(entry(R"({"dtype":"F32","dtype":"F32","shape":[1],"data_offsets":[0,4]})"), 4),
       "key 'dtype' appears twice (tensor 'w')"},
      {"too_deep", raw_file(entry(R"({"dtype":"F32","shape":[[1]],"data_offsets":[0,4]})"), 4),
       "header JSON is nested deeper than a safetensors header"},
      {"metadata_not_object", raw_file(R"({"__metadata__": "x"})"),
       "__metadata__ must be an object of strings, got string"},
      {"metadata_value_not_string", raw_file(R"({"__metadata__": {"format": "pt", "n": 3}})"),
       "__metadata__ must map strings to strings; key 'n' holds integer"},
  };
}

TEST(SafetensorsParse, EveryMalformedCaseHasItsOwnError) {
  for (const Malformed& m : malformed_cases()) {
    SCOPED_TRACE(m.label);
    std::string msg = parse_error(m.bytes);
    EXPECT_EQ(msg.rfind("[safetensors] bad.safetensors: ", 0), 0u) << msg;
    EXPECT_NE(msg.find(m.expected), std::string::npos) << "expected: " << m.expected << "\n     got: " << msg;
  }
}

TEST(SafetensorsParse, HeaderAboveLimit) {
  // A header larger than 100 MB is refused even when the file really is that large.
  std::vector<uint8_t> file((101u << 20) + 8, ' ');
  uint64_t n = 101u << 20;
  for (int i = 0; i < 8; ++i) file[i] = static_cast<uint8_t>(n >> (8 * i));
  EXPECT_ERROR_CONTAINS(parse_safetensors_header(file.data(), file.size(), "big"), "exceeds the 104857600 byte limit");
}

TEST(SafetensorsParse, TensorsSortedByOffset) {
  std::string bytes = raw_file(R"({"late":{"dtype":"F16","shape":[2],"data_offsets":[4,8]},)"
                               R"("early":{"dtype":"F16","shape":[2],"data_offsets":[0,4]}})",
                               8);
  auto h = parse_safetensors_header(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), "x");
  ASSERT_EQ(h.tensors.size(), 2u);
  EXPECT_EQ(h.tensors[0].name, "early");
  EXPECT_EQ(h.tensors[1].name, "late");
  EXPECT_EQ(h.data_offset, 8 + bytes.size() - 8 - 8);
}

}  // namespace
}  // namespace gqa
