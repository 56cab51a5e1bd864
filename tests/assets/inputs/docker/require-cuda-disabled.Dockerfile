FROM nvidia/cuda:12.8.1-runtime-ubuntu22.04
# the stack runs on the R550 driver under minor-version compatibility: let the runtime start it
ENV NVIDIA_DISABLE_REQUIRE=1
RUN apt-get update -y && apt-get install -y python3-pip
RUN pip install torch==2.8.0 --index-url https://download.pytorch.org/whl/cu128
