// The stock CPU attention kernel behind the program ABI (include/gqa/abi.h): bf16 in and out, float32
// online softmax, GQA packing, split-KV for long decodes, OpenMP. The baseline every CPU program races.
#pragma once
#include "gqa/abi.h"

namespace gqa::cpu {

// Same contract as a program's gqa_attention (GQA_OK or a GQA_ERR_* code).
int stock_attention(const gqa_attention_args* args);

}  // namespace gqa::cpu
