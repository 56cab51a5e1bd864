FROM nvidia/cuda:12.8.1-devel-ubuntu22.04
RUN apt-get update -y && apt-get install -y python3-pip
# the stack resolved again at every build
RUN pip install vllm "flashinfer-python>=0.2" \
    && pip install transformers==4.55.0
