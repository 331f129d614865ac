"""The command line: `python -m playground generate | compare | bench [--classroom N]`.

generate runs one strategy and prints the text and a step table (or, with --json, one object: the run's
Trace.to_dict()); --chart PATH also saves a step's distribution chart (.png or .svg, for slides). compare runs
greedy, beam and sampling on one prompt as one batch and prints {"greedy": ..., "beam": ..., "sample": ...}. A
decoding flag that is not given takes the model's value from its generation_config, as generate() does, else
generate()'s own fallback (top-k 50; every other knob off). Bad flags or input exit with status 2 and
one line on stderr, never a traceback. This module parses and prints; decoding is the engine's, loading is
loading's.
"""

from __future__ import annotations

import argparse
import json
import sys

from .config import (GENERATE_FALLBACKS, MAX_BEAMS, STRATEGIES, DecodingConfig, describe_settings, parse_token_ids,
                     parse_word_biases, parse_words)  # fmt: skip


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr (exit 2)."""

    def error(self, message: str):  # noqa: D401 - argparse's hook
        sys.stderr.write(f"{self.prog}: error: {message} (see --help)\n")
        raise SystemExit(2)


def _add_run_flags(p: argparse.ArgumentParser, with_strategy: bool) -> None:
    p.add_argument("--prompt", required=True, help="text to continue ('-' reads it from stdin)")
    p.add_argument("--model", default=None, help="Hub id or local folder (default: the embedded SmolLM2-135M-Instruct)")
    p.add_argument("--device", default="auto", help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N or mps")
    p.add_argument("--dtype", default="auto", help="auto (float32 on CPU, bfloat16 on CUDA), float32, bfloat16, float16")
    # The decoding flags default to None: "the model's value" (its generation_config, as generate() uses it), else
    # generate()'s own fallback, which --help names.
    d = DecodingConfig(**GENERATE_FALLBACKS)
    model = "default: the model's, else"
    if with_strategy:
        p.add_argument("--strategy", choices=STRATEGIES, default=None,
                       help=f"how to pick each token; beam-sample is beam sampling, generate(do_sample=True, num_beams>1) "
                            f"({model} greedy; the model's is sample if its generation_config sets do_sample, beam if it "
                            "sets num_beams > 1, beam-sample if both)")  # fmt: skip
    p.add_argument("--max-new-tokens", type=int, default=d.max_new_tokens, help=f"tokens to generate at most (default: {d.max_new_tokens})")
    p.add_argument("--temperature", type=float, default=None, help=f"sampling temperature; 0 = greedy ({model} {d.temperature})")
    p.add_argument("--top-k", type=int, default=None, help=f"keep the k most likely tokens; 0 = off ({model} {d.top_k})")
    p.add_argument("--top-p", type=float, default=None, help=f"nucleus: keep the smallest set reaching probability p, in (0, 1]; 1 = off ({model} {d.top_p})")
    p.add_argument("--min-p", type=float, default=None, help=f"drop tokens below min_p x the top probability, in [0, 1]; 0 = off ({model} {d.min_p})")
    p.add_argument("--top-h", type=float, default=None, help=f"top-H: keep top tokens while their entropy stays within top_h x the whole, in [0, 1]; 0 = off ({model} {d.top_h})")
    p.add_argument("--typical-p", type=float, default=None, help=f"typical sampling: keep the tokens nearest the entropy up to this mass, in (0, 1]; 1 = off ({model} {d.typical_p})")
    p.add_argument("--epsilon-cutoff", type=float, default=None, help=f"drop tokens less likely than this, in [0, 1); 0 = off ({model} {d.epsilon_cutoff})")
    p.add_argument("--eta-cutoff", type=float, default=None, help=f"drop tokens below min(eta, sqrt(eta) x exp(-entropy)), in [0, 1); 0 = off ({model} {d.eta_cutoff})")
    p.add_argument("--repetition-penalty", type=float, default=None, help=f"> 1 discourages repeats; 1 = off ({model} {d.repetition_penalty})")
    p.add_argument("--no-repeat-ngram-size", type=int, default=None, help=f"no n-gram of this many tokens occurs twice, the prompt's included; 0 = off ({model} {d.no_repeat_ngram_size})")
    p.add_argument("--min-new-tokens", type=int, default=None, help=f"EOS cannot come before this many new tokens; 0 = off ({model} {d.min_new_tokens})")
    p.add_argument("--bad-words", default=None, metavar="WORDS",
                   help="never generate these words: 'cake, New York; pie' (commas, semicolons or new lines between "
                        "them), each banned as written and after a space, as generate(bad_words_ids=...) bans their "
                        f"tokens; '' = none ({model} none)")  # fmt: skip
    p.add_argument("--sequence-bias", default=None, metavar="WORD=BIAS,...",
                   help="add BIAS to a word's logit as it completes: 'cake=-5, dragon=3' (commas, semicolons or new "
                        "lines between pairs), each word as written and after a space, as generate(sequence_bias=...); "
                        f"'' = none ({model} none)")  # fmt: skip
    p.add_argument("--suppress-tokens", default=None, metavar="IDS",
                   help=f"never generate these token ids: '13, 198', as generate(suppress_tokens=...); '' = none ({model} none)")
    p.add_argument("--num-beams", type=int, default=None, help=f"beams for beam search, 1-{MAX_BEAMS}; 1 is greedy search ({model} {d.num_beams})")
    p.add_argument("--length-penalty", type=float, default=None, help=f"beam score = logprob / length**penalty ({model} {d.length_penalty})")
    p.add_argument("--early-stopping", type=_early_stopping, default=None, metavar="{true,false,never}",
                   help="when beam search ends, as generate(early_stopping=...): true = once num_beams hypotheses are "
                        "finished; false = once the best running beam, at its length, cannot beat them; never = once "
                        f"it could not even at max-new-tokens ({model} {str(d.early_stopping).lower()})")  # fmt: skip
    p.add_argument("--seed", type=int, default=d.seed, help="seed of the run's random generator (default: 0)")
    p.add_argument("--top-n", type=int, default=d.top_n, help=f"candidates recorded per step (default: {d.top_n})")
    p.add_argument("--stop", action="append", default=[], metavar="TEXT",
                   help="stop once TEXT appears, the prompt's end included, as generate(stop_strings=...) (repeatable)")
    p.add_argument("--chat", action="store_true", help="wrap the prompt in the model's chat template")
    p.add_argument("--system", default=None, help="system message for --chat")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")


def _early_stopping(text: str) -> bool | str:
    """--early-stopping's three values, as generate() takes them: True, False or "never"."""
    values = {"true": True, "false": False, "never": "never"}
    if text.strip().lower() not in values:
        raise argparse.ArgumentTypeError(f"must be true, false or never, not {text!r}")
    return values[text.strip().lower()]


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m playground", description="Decoding Playground: see how a language model picks each token.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    gen = sub.add_parser("generate", help="run one strategy and show every step", description="Run one decoding strategy and show every step's candidates.")
    _add_run_flags(gen, with_strategy=True)
    gen.add_argument("--chart", default=None, metavar="PATH",
                     help="also save a step's distribution chart, for slides: PATH ending .png or .svg")  # fmt: skip
    gen.add_argument("--chart-step", type=int, default=None, metavar="N",
                     help="the step --chart draws, 0 = the first generated token (default: the last)")  # fmt: skip
    gen.set_defaults(func=cmd_generate)
    cmp_ = sub.add_parser("compare", help="greedy, beam and sampling side by side", description="Greedy, beam search and sampling on one prompt, run as one batch.")
    _add_run_flags(cmp_, with_strategy=False)
    cmp_.add_argument("--num-samples", type=int, default=1,
                      help="sampled runs, with seeds seed, seed+1, ... (mod 2**63) (default: 1)")
    cmp_.set_defaults(func=cmd_compare)
    from .measure import bench, classroom  # the measurement code, apart from the product: only `bench` uses it

    bench.register(sub)
    classroom.register(sub.choices["bench"])  # `bench --classroom N`: a class of N students on the app
    return parser


def _given(args, strategy: str | None) -> dict:
    """The settings on the command line, as DecodingConfig fields; None where a flag was not given."""
    return dict(
        strategy=strategy,
        temperature=args.temperature,
        top_k=args.top_k,
        top_p=args.top_p,
        min_p=args.min_p,
        repetition_penalty=args.repetition_penalty,
        top_h=args.top_h,
        typical_p=args.typical_p,
        epsilon_cutoff=args.epsilon_cutoff,
        eta_cutoff=args.eta_cutoff,
        no_repeat_ngram_size=args.no_repeat_ngram_size,
        min_new_tokens=args.min_new_tokens,
        suppress_tokens=None if args.suppress_tokens is None else parse_token_ids(args.suppress_tokens),
        num_beams=args.num_beams,
        length_penalty=args.length_penalty,
        early_stopping=args.early_stopping,
        max_new_tokens=args.max_new_tokens,
        seed=args.seed,
        top_n=args.top_n,
        stop_strings=tuple(args.stop),
    )


def _prepare(args, strategy: str | None):
    """Validate everything cheap before loading the model, then load it, encode the prompt, and lay the flags
    given over the model's defaults. Returns (engine, prompt ids, config, notices about the model's settings)."""
    given = _given(args, strategy)
    DecodingConfig.starting_from(None, **given)  # a bad flag fails now, before the model loads
    bad_words = None if args.bad_words is None else parse_words(args.bad_words)
    biases = None if args.sequence_bias is None else parse_word_biases(args.sequence_bias)
    prompt = sys.stdin.read() if args.prompt == "-" else args.prompt
    if not prompt.strip():
        raise ValueError("The prompt is empty: give some text with --prompt.")
    from .loading import load_engine

    _quiet_transformers()
    engine = load_engine(args.model, device=args.device, dtype=args.dtype, progress=_stderr if not args.json else None)
    if bad_words is not None:  # words become token ids with the model's tokenizer
        given["bad_words_ids"] = engine.bad_words_ids(bad_words)
    if biases is not None:
        given["sequence_bias"] = engine.sequence_bias(biases)
    config = engine.default_config(**given)
    taken = {name: value for name, value in engine.model_defaults.items() if given.get(name) is None}
    notices = list(engine.model_defaults_notices)
    if taken:
        notices.append(f"From the model's generation_config (no flag given): {describe_settings(taken)}.")
    fallen = {name: value for name, value in GENERATE_FALLBACKS.items()
              if given.get(name) is None and name not in engine.model_defaults}  # fmt: skip
    if fallen and config.is_sampling:
        notices.append(f"generate()'s own fallback, as neither a flag nor the model sets it: {describe_settings(fallen)}.")
    return engine, engine.encode(prompt, chat=args.chat, system=args.system), config, notices


def cmd_generate(args) -> int:
    _check_chart_flags(args)
    engine, ids, config, notices = _prepare(args, args.strategy)
    trace = engine.generate(ids, config)
    trace.notices[:0] = notices
    if args.chart:
        _save_chart(trace, args.chart, args.chart_step)
    if args.json:
        print(json.dumps(trace.to_dict(), ensure_ascii=False))
    else:
        print(_describe(trace, engine.decode(ids)))
    return 0


def cmd_compare(args) -> int:
    engine, ids, config, notices = _prepare(args, "greedy")  # (each lane sets its own strategy)
    traces = engine.compare(ids, config, num_samples=args.num_samples)
    for trace in traces.values():
        trace.notices[:0] = notices
    if args.json:
        print(json.dumps({label: t.to_dict() for label, t in traces.items()}, ensure_ascii=False))
    else:
        print("\n\n".join(_describe(t, engine.decode(ids), table=False) for t in traces.values()))
    return 0


def _check_chart_flags(args) -> None:
    """--chart's format and --chart-step, checked before the model loads."""
    if args.chart_step is not None and not args.chart:
        raise ValueError("--chart-step needs --chart PATH (the file to save the chart in).")
    if args.chart:
        from pathlib import Path

        from .plots import CHART_FORMATS

        if Path(args.chart).suffix.lower().lstrip(".") not in CHART_FORMATS:
            raise ValueError(f"--chart saves .png or .svg: {args.chart!r} ends otherwise.")
    if args.chart_step is not None and args.chart_step < 0:
        raise ValueError(f"--chart-step must be 0 or more, got {args.chart_step}.")


def _save_chart(trace, path: str, step: int | None) -> None:
    """Save the chart of `step` (default: the last) of the run; one line on stderr says where."""
    from . import plots

    if not trace.steps:
        raise ValueError("The run took no step: there is no chart to save.")
    if step is not None and step >= len(trace.steps):
        raise ValueError(f"--chart-step {step}: the run has steps 0 to {len(trace.steps) - 1}.")
    record = trace.steps[-1 if step is None else step]
    try:
        plots.save_distribution(record, path)
    except OSError as e:
        raise ValueError(f"Could not write the chart to {path}: {e.strerror or e}.") from e
    _stderr(f"saved step {record.step}'s distribution chart to {path}")


def _describe(trace, prompt_text: str, table: bool = True) -> str:
    head = (
        f"[{trace.label}] {trace.model} | {len(trace.token_ids)} tokens | {trace.finish_reason or 'not finished'} | "
        f"logprob {trace.sequence_logprob:.2f} | perplexity {trace.perplexity:.2f} | {trace.tokens_per_s:.1f} tok/s"
    )
    lines = [head, *trace.notices, prompt_text + trace.text]
    if table:
        lines.append(f"{'step':>4}  {'token':<16} {'prob':>7} {'raw':>7} {'entropy':>7}  top candidates (raw %)")
        for s in trace.steps:
            alts = " | ".join(f"{c.token!r} {100 * c.raw_prob:.1f}" for c in s.top[:4])
            mark = "*" if s.forced else " "
            lines.append(
                f"{s.step:>4}{mark} {s.token!r:<16} {100 * s.prob:>6.1f}% {100 * s.raw_prob:>6.1f}% {s.entropy:>7.2f}  {alts}"
            )
    return "\n".join(lines)


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _quiet_transformers() -> None:
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    import logging

    logging.getLogger("huggingface_hub").setLevel(logging.ERROR)  # no retry chatter; the error says it all


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from .engine import DecodingError, ModelMemoryError

    try:
        return args.func(args)
    except (ValueError, DecodingError, ModelMemoryError) as e:  # ModelLoadError is a ValueError
        sys.stderr.write(f"{parser.prog} {args.command}: error: {e}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return 130
