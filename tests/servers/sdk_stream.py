"""Streams one answer with an official SDK and prints what it reports, as JSON:
time to the first content event and the usage the SDK assembled.

    sdk_stream.py openai-chat|openai-responses|anthropic-messages BASE_URL KEY MODEL
"""
import json
import sys
import time

kind, base, key, model = sys.argv[1:5]
start = time.perf_counter()
ttft = None
usage = {}
if kind == "openai-chat":
    from openai import OpenAI
    c = OpenAI(base_url=base + "/v1", api_key=key, max_retries=0, timeout=30)
    stream = c.chat.completions.create(model=model, stream=True, stream_options={"include_usage": True},
                                       messages=[{"role": "user", "content": "Say hi"}])
    for chunk in stream:
        if ttft is None and chunk.choices and chunk.choices[0].delta.content:
            ttft = time.perf_counter() - start
        if chunk.usage:
            usage = {"input": chunk.usage.prompt_tokens, "output": chunk.usage.completion_tokens}
elif kind == "openai-responses":
    from openai import OpenAI
    c = OpenAI(base_url=base + "/v1", api_key=key, max_retries=0, timeout=30)
    with c.responses.stream(model=model, input="Say hi") as stream:
        for event in stream:
            if ttft is None and event.type == "response.output_text.delta" and event.delta:
                ttft = time.perf_counter() - start
        u = stream.get_final_response().usage
        usage = {"input": u.input_tokens, "output": u.output_tokens}
elif kind == "anthropic-messages":
    import anthropic
    c = anthropic.Anthropic(base_url=base, api_key=key, max_retries=0, timeout=30)
    with c.messages.stream(model=model, max_tokens=64, messages=[{"role": "user", "content": "Say hi"}]) as stream:
        for event in stream:
            if ttft is None and event.type == "content_block_delta" and getattr(event.delta, "text", ""):
                ttft = time.perf_counter() - start
        u = stream.get_final_message().usage
        usage = {"input": u.input_tokens, "output": u.output_tokens}
print(json.dumps({"ttft": ttft, "usage": usage}))
