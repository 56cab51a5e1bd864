#!/usr/bin/env bash
# seed 001: GLM-5 with HiCache and EAGLE speculative decoding, CUDA graphs on (sglang PR #19177)
export SGLANG_ENABLE_SPEC_V2=1
MODEL=zai-org/GLM-5-FP8
python3 -m sglang.launch_server \
  --model-path $MODEL \
  --tp 8 \
  --trust-remote-code \
  --enable-hierarchical-cache --hicache-ratio 2 \
  --speculative-algorithm EAGLE --speculative-num-steps 3 \
  --speculative-eagle-topk 1 --speculative-num-draft-tokens 4 \
  --speculative-draft-attention-backend flashinfer \
  --page-size 64 --mem-fraction-static 0.85
