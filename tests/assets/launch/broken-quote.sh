python -m sglang.launch_server --model-path "unterminated --tp 2
