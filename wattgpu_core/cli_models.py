"""Model sub-commands of the CLI: ``train``, ``evaluate``, ``predict`` and ``validate-external``.

``train`` fits a model set on the store's Watt Counts runs and writes ``models/``; ``evaluate`` prints the paper's
tables (``--paper-compat`` for the paper's inputs and its duplicate-TDP quirk) and can write the records as JSON;
``predict`` reads requests from a CSV and writes the predictions. Errors a user can act on exit non-zero with a
message (see ``cli.main``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from .errors import ModelNotTrainedError, WattGPUError
from .evaluation import evaluate_frame, format_tables, records_for_json, run_evaluation
from .external import external_validation, format_external, tensor_parallel_check
from .loso import format_loso, leave_one_source_out, logo_quantiles_of
from .models import auxiliary_frame, read_metadata, training_frame
from .paths import MODELS_DIR
from .planning import derivation_checks, energy_choice, load_model_set, predict_csv
from .plus import default_choice, moe_evaluation
from .plus_ttft import MODEL_FILE, train_ttft, ttft_evaluation, ttft_frame
from .registry import REFERENCE, get_model_set, train
from .shipped import MANIFEST, ship, ship_seed
from .store import Store

DEFAULT_EVALUATED = ("paper", "plus")  # evaluate prints WattGPU+ beside the paper's models


def _progress_printer(enabled: bool):
    if not enabled:
        return None
    state = {"last": -1}

    def report(fraction: float, message: str) -> None:
        step = int(fraction * 10)
        if step != state["last"]:
            state["last"] = step
            print(f"  {fraction * 100:5.1f}%  {message}", file=sys.stderr)

    return report


def _cmd_train(args) -> int:
    start = time.perf_counter()
    model_set, reference = get_model_set(args.model_set), get_model_set(REFERENCE)
    beside = model_set.name != reference.name  # evaluated beside the reference: the comparison decides the default
    with Store.open(args.db, read_only=False) as store:
        cv = []
        if args.records:
            # the records of an `evaluate --json` run on this store and code (both model sets, every GPU)
            cv = [{k: v for k, v in r.items() if k not in ("mode",)} for r in json.loads(Path(args.records)
                                                                                    .read_text())
                  if r.get("mode", "all-gpus") == "all-gpus"]
            labels = {r["model"] for r in cv}
            if beside and not {reference.label, model_set.label} <= labels:
                raise WattGPUError(f"{args.records} must hold the all-GPU records of both model sets (evaluate "
                                 "without --paper-compat)")
        elif not args.no_cv:
            sets = [reference, model_set] if beside else [reference]
            result = run_evaluation(store, paper_compat=False, model_sets=sets, baselines=False,
                                    intervals=model_set.gives_intervals, n_jobs=args.jobs)
            cv = [{k: v for k, v in r.items() if k not in ("mode",)} for r in records_for_json(result)]
        else:  # keep the stored metrics this run does not recompute
            cv = _stored_cv_records(args.model_set, args.models_dir)
        meta = train(store, args.models_dir, args.model_set, cv_records=cv)
        if model_set.gives_ttft:
            ttft = train_ttft(store, args.models_dir)
            print(f"wrote {Path(args.models_dir) / MODEL_FILE} (ttft, {ttft.n_rows} rows; MdAPE " + ", ".join(
                f"{k.split('_')[1]} {v:.1f}%" for k, v in ttft.metrics.items()) + ")")
    for t, info in meta["targets"].items():
        print(f"wrote {Path(args.models_dir) / info['file']} ({t}, {info['n_rows']} rows)")
    print(f"wrote {Path(args.models_dir) / (args.model_set + '.meta.json')} "
          f"(training data sha256 {meta['training_data']['sha256'][:12]}...) in {time.perf_counter() - start:.1f} s")
    for r in meta["cv_metrics"]:
        print(f"  {r['strategy']:<4} {r['target']:<5} {r['scenario']:<7} MdAPE {r['mdape_pct']:5.1f}%  "
              f"r {r['pearson_r']:.3f}")
    for target, scens in (meta.get("default_for") or {}).items():
        for scen, d in scens.items():
            print(f"  default for {target} {scen}: {d['default']}")
    if args.no_cv:  # the shipped evaluation is a cross-validation too: --no-cv skips it as well
        print("the shipped evaluation was not rewritten (--no-cv); pages recompute it until "
              "`python -m wattgpu_core ship-evaluation` is run")
    elif not args.no_ship:
        return _cmd_ship_evaluation(args)
    return 0


def _cmd_ship_evaluation(args) -> int:
    start = time.perf_counter()
    progress = _progress_printer(True)
    if getattr(args, "db", None) is not None and getattr(args, "from_db", False):
        with Store.open(args.db) as store:
            manifest = ship(store, args.models_dir, progress=progress, n_jobs=args.jobs)
    else:  # the committed data: a fresh store built from data/seed
        manifest = ship_seed(args.models_dir, progress=progress, n_jobs=args.jobs)
    print(f"wrote {Path(args.models_dir) / MANIFEST} and {len(manifest['files'])} files under "
          f"{Path(args.models_dir) / 'evaluation'} in {time.perf_counter() - start:.1f} s "
          f"(evaluation seconds: {manifest['seconds']})")
    return 0


def _stored_cv_records(name: str, models_dir: Path) -> list[dict]:
    """The CV / LOGO / LOLO records in the set's current metadata (all records for WattGPU+, whose default choice
    needs the paper's too), or none when there is no readable metadata."""

    try:
        meta = read_metadata(name, models_dir)
    except ModelNotTrainedError:
        return []
    records = list(meta.get("cv_metrics") or [])
    if meta.get("default_for") and name != REFERENCE:
        try:
            records += [r for r in read_metadata(REFERENCE, models_dir).get("cv_metrics") or []
                        if r.get("model") != meta.get("label")]
        except ModelNotTrainedError:
            pass
    return records


def _cmd_evaluate(args) -> int:
    progress = _progress_printer(not args.quiet)
    sets = [get_model_set(m) for m in (args.model_set or DEFAULT_EVALUATED)]
    mode = "paper" if args.paper_compat else "catalog"
    with Store.open(args.db) as store:
        if progress:
            progress(0.0, "preparing the training data")
        frame = training_frame(store, mode)
        aux = auxiliary_frame(store, mode) if any(m.uses_aux for m in sets) else None
        ttft_rows = None
        if any(m.gives_ttft for m in sets) and not args.paper_compat:
            ttft_rows = ttft_frame(store)
    result = evaluate_frame(frame, args.paper_compat, sets, aux=aux, n_jobs=args.jobs, progress=progress)
    print(format_tables(result))
    print("top-1 / top-3: share of (LLM, scenario) groups whose lowest-value GPU is predicted lowest / among the "
          "three lowest.\n")
    checks = derivation_checks(frame, result)
    if len(checks):
        print("Energy per token and throughput derived from power and ITL, vs measured (MdAPE):")
        for r in checks.to_dict("records"):
            print(f"  {r['inputs']:<22} {r['scenario']:<12} per {r['per']:<13} throughput "
                  f"{r['throughput_mdape_pct']:6.1f}%  energy/token {r['energy_mdape_pct']:6.1f}%  n={r['n']}")
    choice = energy_choice(frame, result)
    if len(choice):
        print("\nEnergy per token from predicted power and ITL: accuracy and GPU choice (lowest measured energy per "
              "token per LLM and scenario; extra = mean extra energy of the GPU picked):")
        for r in choice.to_dict("records"):
            print(f"  {r['model']:<16} {r['scenario'].capitalize():<8} {r['strategy']:<5} MdAPE "
                  f"{r['mdape_pct']:6.1f}%  GPU τ {r['gpu_tau']:5.2f}  top-1 {r['top1_pct']:4.0f}%  top-3 "
                  f"{r['top3_pct']:4.0f}%  extra {r['extra_energy_pct']:5.1f}%")
    labels = {m.label for m in sets}
    plus = next((m for m in sets if m.reads_workload), None)  # WattGPU+: its own checks follow the tables
    if plus is not None and get_model_set(REFERENCE).label in labels:
        print("\nDefault model per target and scenario (WattGPU+ where its MdAPE is lower on LOGO and on at least "
              "two of CV / LOGO / LOLO):")
        for target, scens in default_choice(list(result.records)).items():
            for scen, d in scens.items():
                m = d["mdape_pct"]
                print(f"  {target:<5} {scen:<7} {d['default']:<5}  " + "  ".join(
                    f"{k} {m[k]['WattGPU+']:.1f}% vs {m[k]['XGB']:.1f}%" for k in ("CV", "LOGO", "LOLO")))
    if plus is not None and aux is not None and not args.paper_compat:
        moe = moe_evaluation(frame, aux, n_jobs=args.jobs)
        if len(moe):
            print("\nWattGPU+ on Watt Counts' MoE LLMs (outside the paper's data; LOGO: GPU held out, LOLO: MoE LLM "
                  "held out):")
            for r in moe.to_dict("records"):
                print(f"  {r['target']:<5} {r['scenario']:<7} {r['strategy']:<4} MdAPE {r['mdape_pct']:5.1f}%  "
                      f"r {r['pearson_r']:.3f}  n={r['n_rows']} ({r['n_llms']} LLMs)")
    loso = []
    if plus is not None and aux is not None and not args.paper_compat:
        loso, _ = leave_one_source_out(plus, frame, aux, quantiles=logo_quantiles_of(result), n_jobs=args.jobs)
        if loso:
            print("\n" + format_loso(loso))
    ttft_records = []
    if ttft_rows is not None and len(ttft_rows):
        ttft_records, _ = ttft_evaluation(ttft_rows)
        print(f"\nWattGPU+ time to first token ({len(ttft_rows)} runs with a measured TTFT; every fold refitted):")
        for r in ttft_records:
            cov = r.get("interval_coverage_pct")
            print(f"  ttft  {r['scenario']:<7} {r['strategy']:<4} MdAPE {r['mdape_pct']:5.1f}%  r {r['pearson_r']:.3f}  "
                  f"n={r['n_rows']} ({r['n_gpus']} GPUs, {r['n_llms']} LLMs)"
                  + (f"  80% interval coverage {cov:.0f}%" if cov is not None else ""))
    print(f"({result.seconds:.1f} s)")
    if args.json:
        records = records_for_json(result) + [
            {k: (None if isinstance(v, float) and v != v else v) for k, v in r.items()} for r in loso + ttft_records]
        Path(args.json).write_text(json.dumps(records, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


def _cmd_predict(args) -> int:
    model_set = load_model_set(args.model_set, args.models_dir)
    with Store.open(args.db) as store:
        gpus, llms = store.gpus(), store.llms()
    out = predict_csv(args.input, args.output, gpus, llms, model_set)
    extrapolated = int((~out["gpu_seen"] | ~out["llm_seen"]).sum())
    outside = int(out["out_of_range"].sum())
    stacks = ", ".join(sorted(out["serving_stack"].dropna().unique()))
    print(f"wrote {args.output}: {len(out)} predictions with {model_set.label} for serving stack {stacks} "
          f"({extrapolated} for a GPU or LLM not in the training data, {outside} with a spec outside the training "
          f"range; the notes column says what is extrapolated, weak or unsupported)")
    return 0


def _cmd_validate_external(args) -> int:
    sets = tuple(args.model_set or ("plus", "paper"))
    with Store.open(args.db) as store:
        result = external_validation(store, sets)
        tp = tensor_parallel_check(store) if any(get_model_set(s).reads_workload for s in sets) else None
    print(format_external(result))
    data = result.to_dict()
    if tp is not None and len(tp):
        print("\n  Tensor parallel (WattGPU+, ML.ENERGY's stack calibrated on its single-GPU runs; its 2-16 GPU runs "
              "never trained on):")
        for r in tp.to_dict("records"):
            print(f"  {r['quantity']:<22} TP {str(r['tensor_parallel']):<4} MdAPE {r['mdape_pct']:6.1f}%  "
                  f"median ln(measured/predicted) {r['median_ln_ratio']:+.2f}  n={r['n']}")
        data["tensor_parallel"] = tp.to_dict("records")
    if args.json:
        Path(args.json).write_text(json.dumps(data, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


def add_model_commands(sub, add_db) -> None:
    p = sub.add_parser("train", help="fit a model set on the store's Watt Counts runs and write models/")
    add_db(p)
    p.add_argument("--models-dir", type=Path, default=MODELS_DIR, help="where to write the model files")
    p.add_argument("--model-set", default="paper", help="model set to train: paper or plus (default: paper)")
    p.add_argument("--no-cv", action="store_true", help="skip the CV / LOGO / LOLO metrics stored in the metadata "
                   "(kept from the previous model files) and the shipped evaluation")
    p.add_argument("--records", metavar="JSON", help="store these `evaluate --json` records (same store and code) "
                   "instead of evaluating again")
    p.add_argument("--jobs", type=int, default=None, help="parallel folds for those metrics (default: CPUs)")
    p.add_argument("--no-ship", action="store_true",
                   help="do not write the shipped evaluation (models/evaluation.json; see ship-evaluation)")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("ship-evaluation", help="evaluate the committed models on the committed (seed) data and "
                                               "write models/evaluation.json + models/evaluation/ for the app")
    add_db(p)
    p.add_argument("--models-dir", type=Path, default=MODELS_DIR, help="the model files to evaluate")
    p.add_argument("--from-db", action="store_true", help="evaluate on --db instead of a fresh seed store")
    p.add_argument("--jobs", type=int, default=None, help="parallel folds (default: CPUs)")
    p.set_defaults(func=_cmd_ship_evaluation)

    p = sub.add_parser("evaluate", help="print the paper's tables (CV, LOGO, LOLO and the baselines)",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    add_db(p)
    p.add_argument("--paper-compat", action="store_true",
                   help="the paper's GPU values and its duplicate-TDP quirk (reproduces its tables)")
    p.add_argument("--json", type=Path, default=None, help="also write the records to this JSON file")
    p.add_argument("--model-set", action="append", default=None,
                   help="model set to evaluate (repeatable; default: paper and plus, i.e. XGB and WattGPU+)")
    p.add_argument("--jobs", type=int, default=None, help="parallel folds (default: CPUs)")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    p.set_defaults(func=_cmd_evaluate)

    p = sub.add_parser("predict", help="predict power, ITL, energy per token and throughput for a CSV of requests")
    add_db(p)
    p.add_argument("--input", type=Path, required=True,
                   help="CSV with llm, gpu, scenario [, batch_size, request_rate_qps, input_tokens, output_tokens, "
                        "num_requests, num_gpus or tensor_parallel, precision, max_concurrency, serving_stack]")
    p.add_argument("--output", type=Path, required=True, help="CSV to write")
    p.add_argument("--model-set", default="default", choices=("default", "plus", "paper"),
                   help="default: WattGPU+ where it measured better than the paper's models, else the paper's; "
                        "plus: WattGPU+ only; paper: the paper's XGBoost models")
    p.add_argument("--models-dir", type=Path, default=MODELS_DIR, help="where the model files are")
    p.set_defaults(func=_cmd_predict)

    p = sub.add_parser("validate-external", help="train on Watt Counts only and predict the ML.ENERGY v2 runs "
                                                 "(A100 and the unseen H100 SXM5): MdAPE and H100/A100 ratio errors")
    add_db(p)
    p.add_argument("--json", type=Path, default=None, help="also write the result to this JSON file")
    p.add_argument("--model-set", action="append", default=None,
                   help="model set to validate (repeatable; default: plus and paper)")
    p.set_defaults(func=_cmd_validate_external)
