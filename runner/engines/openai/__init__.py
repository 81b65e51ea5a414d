"""The engine for MODEL=openai:<model id>: jobs sent, BATCH_SIZE at a time and streamed, to an OpenAI-compatible
server (vLLM, Ollama, llama.cpp's llama-server, TGI, LM Studio, a hosted API). Never imports torch."""
