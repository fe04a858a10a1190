#!/usr/bin/env python3
"""llama.cpp (through llama-cpp-python) on a GGUF file and a prompt file: load time, time to
first token, prefill and decode tokens/s, as one JSON line with the same keys as aidiag's
`cargo bench --bench model` line (scripts/bench-model.sh puts the two side by side).

Usage: scripts/bench_llama_cpp.py MODEL PROMPT_FILE [--threads 2] [--runs 3] [--tokens 64]

The prompt file's text is tokenized as is: no BOS added, special tokens (<|im_start|> ...)
parsed, as aidiag does. Each run clears the KV cache, so it prefills the whole prompt; sampling
is greedy; a run generates --tokens tokens or stops earlier at an end-of-generation token.
Time to first token is prefill plus the first sampled token; prefill tokens/s is prompt tokens
divided by that; decode tokens/s is (generated - 1) / (time after the first token). Medians
over the runs (the upper middle value for an even count, as aidiag's bench does).
"""

import argparse
import json
import time


def median(values):
    values = sorted(values)
    return values[len(values) // 2]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("model")
    parser.add_argument("prompt_file")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=64)
    args = parser.parse_args()

    import llama_cpp

    started = time.perf_counter()
    llm = llama_cpp.Llama(
        model_path=args.model,
        n_threads=args.threads,
        n_threads_batch=args.threads,
        n_ctx=2048,
        verbose=False,
        seed=42,
    )
    load_s = time.perf_counter() - started

    with open(args.prompt_file, encoding="utf-8") as f:
        text = f.read()
    prompt = llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)
    if len(prompt) + args.tokens > llm.n_ctx():
        raise SystemExit(f"prompt ({len(prompt)} tokens) + --tokens does not fit n_ctx 2048")

    vocab = getattr(llm._model, "vocab", None)  # llama-cpp-python >= 0.3.2
    if vocab is not None:
        is_eog = lambda token: llama_cpp.llama_token_is_eog(vocab, token)
    else:
        is_eog = lambda token: token == llm.token_eos()

    first, decode, generated = [], [], []
    for _ in range(args.runs):
        llm.reset()  # n_tokens = 0: the next eval clears the KV cache and prefills everything
        count = 0
        first_at = None
        started = time.perf_counter()
        # reset=False: no prefix reuse of the previous run's KV cache.
        for token in llm.generate(prompt, temp=0.0, repeat_penalty=1.0, reset=False):
            if first_at is None:
                first_at = time.perf_counter()
            if is_eog(token):
                break
            count += 1
            if count >= args.tokens:
                break
        end = time.perf_counter()
        first.append(first_at - started)
        generated.append(count)
        if count > 1:
            decode.append((count - 1) / (end - first_at))

    first_s = median(first)
    print(
        json.dumps(
            {
                "engine": f"llama.cpp (llama-cpp-python {llama_cpp.__version__})",
                "model": args.model,
                "weights": args.model,
                "threads": args.threads,
                "load_s": round(load_s, 3),
                "prompt_tokens": len(prompt),
                "first_token_s": round(first_s, 3),
                "prefill_tok_s": round(len(prompt) / first_s, 1),
                "decode_tok_s": round(median(decode), 1) if decode else 0.0,
                "generated_tokens": generated,
            }
        )
    )


if __name__ == "__main__":
    main()
