FROM nvidia/cuda:12.8.1-runtime-ubuntu22.04
RUN apt-get update -y && apt-get install -y python3-pip
RUN pip install torch==2.8.0 --index-url https://download.pytorch.org/whl/cu128
