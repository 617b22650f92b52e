"""The LLM side: the port, the OpenAI-compatible client, and counting what it is sent.

client.py (the LLM port and OpenAIChat); offline.py (the built-in responder); endpoints.py (the
server's own tokenize/props endpoints); discovery.py (what serve learns from the server);
tokenizer.py and counting.py (tiktoken or the server's tokenizer; encodings/ offline);
context_windows.py (known models' context sizes); calibration.py (per-model corrections learned);
overflow.py (context-overflow answers recognised).
"""
