"""Shared UI: the cached store and models, catalog queries, the custom GPU / LLM sidebar and URL state.

Only Streamlit glue lives here (this package is not a page: it sits below ``pages/`` so that Streamlit never lists
it); every number comes from ``wattgpu_core`` and every word from ``pages.view``.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from pages.view import catalog, labels
from pages.view import compare as view_compare
from pages.view import cross_validation as view_cv
from pages.view import explain as view_explain
from pages.view import home as view_home
from pages.view import url_state as view_state
from wattgpu_core import explain as core_explain
from wattgpu_core import retraining
from wattgpu_core import side_by_side as sbs
from wattgpu_core.access import WriteAccess
from wattgpu_core.backend import resolve
from wattgpu_core.catalog import LlmResolver
from wattgpu_core.custom import FORM_FACTORS, GPU_SPEC_FIELDS, MEMORY_TYPES, gpu_from_specs, llm_from_config
from wattgpu_core.deploy import Costs, plan_deployments
from wattgpu_core.errors import ModelNotTrainedError, WattGPUError
from wattgpu_core.ingest import validate_bytes
from wattgpu_core.planning import load_model_set
from wattgpu_core.planning_data import load_planning_defaults
from wattgpu_core.safety import md
from wattgpu_core.shipped import load_external, ready_evaluation
from wattgpu_core.store import Store

# -- the router ------------------------------------------------------------------------------------------------------
_ROUTER = {"ran": False}


def router_ran() -> None:
    """Called by ``app.py`` before it runs the chosen page: from then on this server process routes through
    ``st.navigation``."""
    _ROUTER["ran"] = True


def _ensure_router() -> None:
    """Hand a page run that did not come through ``app.py`` back to it.

    Streamlit decides once per server process whether the app is a legacy ``pages/`` folder app. It finds our
    ``pages/`` folder (the page scripts live there), so until ``app.py`` has run once, a page opened by its URL
    (``/plan`` as the first visit after a start) was run on its own: the sidebar listed the file names ("app",
    "compare", ...) and the wide layout was lost. Calling ``st.navigation`` turns the legacy mode off for the
    process; the rerun then goes through ``app.py`` and opens the same URL's page."""
    if _ROUTER["ran"]:
        return
    _ROUTER["ran"] = True
    st.navigation(app_pages())
    st.rerun()


_PAGES = (  # (script under the checkout, title, icon)
    ("pages/home.py", "Home", ":material/home:"),
    ("pages/compare.py", "Compare GPUs", ":material/leaderboard:"),
    ("pages/plan.py", "Plan a deployment", ":material/dns:"),
    ("pages/side_by_side.py", "Side by side", ":material/compare:"),
    ("pages/explain.py", "Explain", ":material/psychology:"),
    ("pages/cross_validation.py", "Cross-validation", ":material/fact_check:"),
    ("pages/data.py", "Data", ":material/database:"),
)


def app_pages() -> list:
    """The dashboard's pages, in sidebar order (the first is the default): what ``app.py`` routes to."""
    root = Path(__file__).resolve().parents[2]
    return [st.Page(str(root / path), title=title, icon=icon, default=i == 0)
            for i, (path, title, icon) in enumerate(_PAGES)]


# -- after a page is drawn ---------------------------------------------------------------------------------------------
def after_page_drawn() -> None:
    """Work the next pages will need, started once the current page is on screen: shap's import (the Explain page's
    first explanation would otherwise wait 1.5-2 s for it)."""
    core_explain.import_shap_in_background()


# -- store and catalog ------------------------------------------------------------------------------------------------
@st.cache_resource(show_spinner="Opening the data store (built from the seed data on first start)...")
def _open_store(path: str) -> Store:
    return Store.open(path, read_only=access().read_only)


def store_path() -> str:
    """The store's name ($WATTGPU_DB: the embedded file, or a DuckLake), the key of every cached query."""
    return resolve().key


def access() -> WriteAccess:
    return WriteAccess.from_environment()


def writer() -> str | None:
    """Who writes from this session (recorded with each batch), or None when it may not write."""
    return access().writer(st.user)


def sign_in_notice() -> None:
    """Why this session cannot write, with a sign-in button where login is configured."""
    try:
        login_available = "auth" in st.secrets
    except FileNotFoundError:
        login_available = False
    st.info(access().notice(login_available), icon=":material/lock:")
    if login_available and not access().read_only:
        st.button("Sign in", on_click=st.login, key="sign_in")


def store() -> Store:
    return _open_store(store_path())


def version() -> str:
    """Cache key of everything a page shows: the data and the model files in use (changes after a retrain)."""
    return retraining.models_version(store())


@st.cache_data(max_entries=8, show_spinner=False)
def _gpus(path: str, data_version: str):
    return _open_store(path).gpus()


@st.cache_data(max_entries=8, show_spinner=False)
def _llms(path: str, data_version: str):
    return _open_store(path).llms()


@st.cache_data(max_entries=4, show_spinner=False)
def _runs(path: str, data_version: str):
    return _open_store(path).runs()


@st.cache_data(max_entries=8, show_spinner=False)
def _summary(path: str, data_version: str) -> dict:
    return view_home.data_summary(_open_store(path))


def gpus():
    return _gpus(store_path(), version())


def llms():
    return _llms(store_path(), version())


def runs():
    return _runs(store_path(), version())


def summary() -> dict:
    return _summary(store_path(), version())


# -- models -----------------------------------------------------------------------------------------------------------
@st.cache_resource(show_spinner="Loading the prediction models...", max_entries=8)
def _model_set_at(name: str, models_dir: str):
    return load_model_set(name, Path(models_dir))


def _model_set(name: str):
    """The model set the app predicts with: retrained on the current data (Data page) if so, else committed."""
    return _model_set_at(name, str(retraining.active_models_dir(store())))


def models_origin() -> str:
    return view_home.models_origin(retraining.active_models_dir(store()))


def model_name() -> str:
    """The model set chosen in the sidebar ("default" = WattGPU+ where it measures better, or "paper")."""
    return st.session_state.get("model_set") or url_state().model


def models(name: str | None = None):
    """The trained model set, or a clear message and a stopped page when the model files are missing."""
    name = name or model_name()
    try:
        return _model_set(name)
    except ModelNotTrainedError as exc:
        st.error(f"The prediction models are not available: {md(exc)}\n\n"
                 "Train them with `python -m wattgpu_core train`, then reload this page.")
        st.stop()


# -- URL state --------------------------------------------------------------------------------------------------------
def url_state() -> view_state.PageState:
    return view_state.PageState.from_query(st.query_params.to_dict())


def write_url(state: view_state.PageState, keys: tuple[str, ...]) -> None:
    """Put the page's state in the URL (only ``keys``), so the view can be shared by link."""
    wanted = {k: v for k, v in state.to_query().items() if k in keys}
    if wanted != st.query_params.to_dict():
        st.query_params.from_dict(wanted)


def seed(key: str, value) -> None:
    """Give a widget its initial value (from the URL) unless the user has already set it this session."""
    if key not in st.session_state:
        st.session_state[key] = value


def pick_llm(key: str, state: view_state.PageState, label: str = "LLM") -> str:
    choices = catalog.llm_choices(llms())
    if not choices:
        st.info("The catalog has no LLM with complete architecture data; add one from its config.json.")
        st.stop()
    default = state.llm if state.llm in choices else LlmResolver(llms()).try_resolve(state.llm or "")
    if default not in choices:  # a link's LLM may be an older or newer Hugging Face id of a catalog LLM
        fallback = view_state.PageState().llm
        default = fallback if fallback in choices else next(iter(choices))
    if st.session_state.get(key) not in choices:
        st.session_state[key] = default
    return st.selectbox(label, list(choices), format_func=choices.get, key=key,
                        help="Type to search the catalog. Only LLMs whose architecture is fully known are listed.")


def pick_gpu(key: str, state: view_state.PageState, label: str = "GPU") -> str:
    choices = catalog.gpu_choices(gpus())
    default = state.gpu if state.gpu in choices else next(iter(choices))
    if st.session_state.get(key) not in choices:
        st.session_state[key] = default
    return st.selectbox(label, list(choices), format_func=choices.get, key=key, help="Type to search the catalog.")


def pick_workload(prefix: str, state: view_state.PageState, columns: bool = True,
                  stack: bool = True) -> view_state.Workload:
    """Scenario, batch size or request rate, input and output tokens, and (``stack``) the serving stack under them
    (seeded from the URL); a page that places the stack elsewhere calls :func:`pick_stack` itself."""
    seed(f"{prefix}_scenario", state.scenario)
    seed(f"{prefix}_batch", state.batch)
    seed(f"{prefix}_qps", state.qps)
    seed(f"{prefix}_inp", state.inp)
    seed(f"{prefix}_out", state.out)
    cols = st.columns(4) if columns else [st.container() for _ in range(4)]
    scenario = cols[0].radio("Workload", list(labels.SCENARIO_CHOICES), format_func=labels.SCENARIO_CHOICES.get,
                             key=f"{prefix}_scenario")
    if scenario == "offline":
        batch = cols[1].number_input("Batch size (requests at once)", 1, 4096, step=1, key=f"{prefix}_batch")
        qps = st.session_state[f"{prefix}_qps"]
    else:
        qps = cols[1].number_input("Request rate (requests/s)", 0.001, 1000.0, step=0.1, format="%.3g",
                                   key=f"{prefix}_qps")
        batch = st.session_state[f"{prefix}_batch"]
    inp = cols[2].number_input("Input tokens per request", 1, 131072, step=16, key=f"{prefix}_inp")
    out = cols[3].number_input("Output tokens per request", 1, 131072, step=16, key=f"{prefix}_out")
    return view_state.Workload(scenario, int(batch), float(qps), int(inp), int(out),
                               serving_stack=pick_stack(prefix, state) if stack else None)


def pick_stack(prefix: str, state, narrow: bool = True) -> str | None:
    """The serving stack to predict for (None: the models' default stack): the calibrated stacks, then "another
    stack" (no calibration: the default stack's prediction with a widened interval). Seeded from the URL."""
    stacks = getattr(models(), "calibrated_stacks", None) or []
    if len(stacks) < 2:
        return None
    options = [*stacks, labels.OTHER_STACK]
    seed(f"{prefix}_stack", state.stack if state.stack in options else stacks[0])
    col = st.columns([2, 3])[0] if narrow else st
    stack = col.selectbox("Serving stack", options, key=f"{prefix}_stack", help=labels.STACK_HELP)
    return None if stack == stacks[0] else stack


# -- sidebar: custom GPU and LLM ------------------------------------------------------------------------------------
def sidebar() -> None:
    _ensure_router()
    with st.sidebar:
        seed("model_set", url_state().model)
        st.radio("Prediction model", list(labels.MODEL_CHOICES), format_func=labels.MODEL_CHOICES.get, key="model_set",
                 help=labels.MODEL_HELP)
        origin = models_origin()
        if origin:
            st.caption(origin)
        if writer() is None:  # no custom GPU / LLM forms for a visitor who may not write
            return
        st.divider()
        st.caption("Hardware or a model missing from the catalog? Add it here; it is marked user-defined and "
                   "can be removed on the Data page.")
        with st.expander("Add a custom GPU", icon=":material/memory:"):
            _custom_gpu_form()
        with st.expander("Add a custom LLM", icon=":material/upload_file:"):
            _custom_llm_form()


_INTEGER_SPECS = ("release_year", "base_clock_mhz", "boost_clock_mhz", "transistor_count_m")


def _start_from_catalog() -> None:
    """Copy the chosen catalog GPU's values into the custom GPU form; values the catalog lacks stay empty."""
    gpu_id = st.session_state.get("custom_gpu_base")
    if not gpu_id:
        return
    row = gpus().set_index("gpu_id").loc[gpu_id]
    st.session_state["custom_gpu_name"] = f"{row['name']} (custom)"
    for f in GPU_SPEC_FIELDS:
        value = row.get(f.name)
        known = value is not None and value == value  # NaN is unknown
        if f.name in _INTEGER_SPECS:
            st.session_state[f"custom_gpu_{f.name}"] = int(round(float(value))) if known else None
        else:
            st.session_state[f"custom_gpu_{f.name}"] = float(value) if known else None
    if isinstance(row.get("memory_type"), str) and row["memory_type"] in MEMORY_TYPES:
        st.session_state["custom_gpu_memory_type"] = row["memory_type"]


def _custom_gpu_form() -> None:
    choices = catalog.gpu_choices(gpus())
    st.selectbox("Start from a catalog GPU (optional)", [""] + list(choices),
                 format_func=lambda g: choices.get(g, "— empty form —"), key="custom_gpu_base",
                 on_change=_start_from_catalog,
                 help="Fills the form with that GPU's catalog values; fill in what the catalog lacks (shown empty) "
                      "and change what differs.")
    base = st.session_state.get("custom_gpu_base")
    if base:
        row = gpus().set_index("gpu_id").loc[base]
        lacking = [f.label for f in GPU_SPEC_FIELDS if not (row.get(f.name) == row.get(f.name))]
        if lacking:
            st.caption("The catalog lacks " + ", ".join(lacking) + " for this GPU: fill in what you know.")
    with st.form("custom_gpu_form", border=False):
        seed("custom_gpu_name", "")
        specs = {"name": st.text_input("Name", placeholder="e.g. NVIDIA B200 air-cooled", key="custom_gpu_name")}
        for f in GPU_SPEC_FIELDS:
            key = f"custom_gpu_{f.name}"
            whole = f.name in _INTEGER_SPECS
            default = (int(f.default) if whole else float(f.default)) if f.default is not None else None
            seed(key, default)
            low, high = (int(f.low), int(f.high)) if whole else (float(f.low), float(f.high))
            specs[f.name] = st.number_input(f.label + ("" if f.required else " (optional)"), min_value=low,
                                            max_value=high, step=1 if whole else None, format="%d" if whole else None,
                                            help=f.help or None, key=key)
        seed("custom_gpu_memory_type", MEMORY_TYPES[0])
        specs["memory_type"] = st.selectbox("Memory type", MEMORY_TYPES, key="custom_gpu_memory_type")
        specs["form_factor"] = st.selectbox("Form factor", FORM_FACTORS, index=1)
        submitted = st.form_submit_button("Add GPU", type="primary")
    if submitted:
        try:
            row = gpu_from_specs(specs, set(gpus()["gpu_id"]))
            store().add_gpu(row, added_by=writer())
        except WattGPUError as exc:
            st.error(md(exc))
        else:
            st.success(f"Added {md(row['name'])} (user-defined). It now appears in every GPU list.")


def _custom_llm_form() -> None:
    upload = st.file_uploader("Hugging Face config.json", type=["json"], key="custom_llm_file")
    repo = st.text_input("Model id (org/name)", key="custom_llm_id",
                         help="Used as the LLM's name; optional when config.json names the model.")
    if st.button("Add LLM", disabled=upload is None, type="primary", key="custom_llm_add"):
        try:
            row = llm_from_config(upload.getvalue(), repo, set(llms()["llm_id"]))
            store().add_llm(row, added_by=writer())
        except WattGPUError as exc:
            st.error(md(exc))
        else:
            moe = f", {row['active_params_b']:.3g}B active" if row["is_moe"] else ""
            st.success(f"Added {md(row['llm_id'])}: {row['total_params_b']:.3g}B parameters{moe} (user-defined).")


def stop_with(message: str) -> None:
    """An empty selection: one sentence, then the page stops."""
    st.info(message)
    st.stop()


# -- comparisons ------------------------------------------------------------------------------------------------------
@st.cache_data(max_entries=64, show_spinner=False)
def _compare(path: str, data_version: str, model_name: str, llm_id: str, workload: view_state.Workload,
             state: view_state.PageState) -> view_compare.Comparison:
    candidates = catalog.apply_filters(_gpus(path, data_version), state)
    return view_compare.compare_gpus(llm_id, workload, candidates, _llms(path, data_version),
                                     _model_set(model_name), _runs(path, data_version))


def compare(llm_id: str, workload: view_state.Workload, state: view_state.PageState,
            model: str | None = None) -> view_compare.Comparison:
    """The (cached) comparison for this LLM, workload and filters; errors the user can act on stop the page."""
    model = model or model_name()
    models(model)
    try:
        return _compare(store_path(), version(), model, llm_id, workload,
                        state.replace(llm="", gpu="", scenario="offline", batch=1, qps=1.0, inp=1, out=1, model=""))
    except WattGPUError as exc:
        st.error(md(exc))
        st.stop()


# -- explanations ---------------------------------------------------------------------------------------------------
@st.cache_data(max_entries=32, show_spinner=False)
def _explain(path: str, data_version: str, model_name: str, llm_id: str, gpu_id: str, workload: view_state.Workload):
    return view_explain.explain_prediction(llm_id, gpu_id, workload, _gpus(path, data_version),
                                           _llms(path, data_version), _model_set(model_name))


def explain(llm_id: str, gpu_id: str, workload: view_state.Workload, model_name: str = "paper"):
    models(model_name)  # a clear message when the model files are missing
    try:
        return _explain(store_path(), version(), model_name, llm_id, gpu_id, workload)
    except WattGPUError as exc:
        st.error(md(exc))
        st.stop()


@st.cache_resource(show_spinner="Computing SHAP values over the training runs...", max_entries=4)
def _global_importance(path: str, data_version: str, model_name: str):
    store = _open_store(path)
    return view_cv.shipped_importance(store, "paper") or view_explain.global_importance(store, _model_set(model_name))


def global_importance(model_name: str = "paper"):
    models(model_name)
    return _global_importance(store_path(), version(), model_name)


def model_switch(key: str) -> str:
    """An in-page choice of the model set to explain. It starts from the sidebar's choice and changes only this
    page (the other pages keep predicting with the sidebar's model); the caption says so when they differ."""
    seed(key, model_name())
    choice = st.segmented_control("Model to explain", list(labels.MODEL_CHOICES), format_func=labels.MODEL_CHOICES.get,
                                  key=key, help=labels.MODEL_HELP) or model_name()
    if choice != model_name():
        st.caption(f"Explaining {labels.MODEL_CHOICES[choice]} on this page only; Home, Compare GPUs and Side by side "
                   f"predict with the sidebar's model ({labels.MODEL_CHOICES[model_name()]}).")
    else:
        st.caption("Starts from the sidebar's prediction model; switching here changes this page only.")
    return choice


@st.cache_resource(show_spinner="Sampling the training configurations explanations start from...", max_entries=4)
def _explanation_background(path: str, data_version: str, model_name: str):
    return core_explain.explanation_background(_open_store(path), _model_set(model_name))


@st.cache_data(max_entries=32, show_spinner="Explaining the prediction...")
def _explain_view(path: str, data_version: str, model_name: str, llm_id: str, gpu_id: str,
                  workload: view_state.Workload):
    return view_explain.explain_view(llm_id, gpu_id, workload, _gpus(path, data_version), _llms(path, data_version),
                                     _model_set(model_name), _explanation_background(path, data_version, model_name))


def explain_view(llm_id: str, gpu_id: str, workload: view_state.Workload, model: str):
    """The (cached) explanation of ``model``'s prediction; errors the user can act on stop the page."""
    models(model)
    try:
        return _explain_view(store_path(), version(), model, llm_id, gpu_id, workload)
    except WattGPUError as exc:
        st.error(md(exc))
        st.stop()


@st.cache_resource(max_entries=8, show_spinner=False)
def _plus_importance(path: str, data_version: str, model_name: str, pool: str, _computed=None):
    """Holds WattGPU+ global importance (frozen, never mutated); the work runs outside, under a progress bar."""
    if _computed is None:
        raise _NotComputed
    return _computed


def plus_importance(model: str, pool: str, compute: bool = False):
    """WattGPU+ global importance for one scenario pool: the cached result, computed (with a progress bar) when
    ``compute``; None when not computed yet."""
    key = (store_path(), version(), model, pool)
    try:
        return _plus_importance(*key)
    except _NotComputed:
        shipped = view_cv.shipped_importance(store(), f"plus-{pool}")
        if shipped is not None:
            return _plus_importance(*key, _computed=shipped)
        if not compute:
            return None
    bar = st.progress(0.0, text="Explaining training configurations...")
    background = _explanation_background(store_path(), version(), model)
    result = core_explain.plus_global_importance(_model_set(model), background, pool,
                                                 progress=lambda f, msg: bar.progress(min(max(f, 0.0), 1.0), text=msg))
    bar.empty()
    return _plus_importance(*key, _computed=result)


# -- cross-validation -------------------------------------------------------------------------------------------------
class _NotComputed(Exception):
    pass


@st.cache_resource(max_entries=4, show_spinner=False)
def _cv_cache(path: str, data_version: str, paper_compat: bool, _computed=None):
    """Holds evaluation results (frozen, never mutated) across sessions; the work itself runs outside this
    function, where a progress bar can show."""
    if _computed is None:
        raise _NotComputed
    return _computed


def cross_validation(paper_compat: bool, rerun: bool = False):
    """Evaluation results for the current data (the paper's models and WattGPU+), computed once with a progress
    bar, kept in memory and on disk until the data or the code change."""
    key = (store_path(), version(), bool(paper_compat))
    if rerun:
        _cv_cache.clear()
    try:
        return _cv_cache(*key)
    except _NotComputed:
        pass
    estimate = view_cv.evaluation_estimate(store(), paper_compat)
    bar = st.progress(0.0, text=f"Cross-validating the models on the current data, uploads included ({estimate})...")
    result = view_cv.run_cross_validation(store(), paper_compat, model_sets=retraining.evaluated_model_sets(),
                                          refresh=rerun,
                                          progress=lambda f, msg: bar.progress(min(max(f, 0.0), 1.0),
                                                                               text=f"{msg} ({estimate})"))
    bar.empty()
    return _cv_cache(*key, _computed=result)


@st.cache_data(max_entries=4, show_spinner="Predicting the ML.ENERGY v2 runs from a model trained on Watt Counts...")
def _external(path: str, data_version: str) -> dict:

    store = _open_store(path)
    return load_external(store, retraining.active_models_dir(store)) or view_cv.external_validation(store)


def external_validation() -> dict:
    return _external(store_path(), version())


# -- uploads ----------------------------------------------------------------------------------------------------------
@st.cache_data(max_entries=8, show_spinner="Validating the file...")
def _validate(path: str, data_version: str, name: str, data: bytes):

    return validate_bytes(_open_store(path), name, data)


def validate_upload(name: str, data: bytes):
    """A PreparedImport, or ValidationError listing every problem by row and column."""
    return _validate(store_path(), version(), name, data)


# -- single prediction ------------------------------------------------------------------------------------------------
@st.cache_data(max_entries=64, show_spinner=False)
def _predict_one(path: str, data_version: str, model_name: str, llm_id: str, gpu_id: str,
                 workload: view_state.Workload):
    return view_home.predict_one(llm_id, gpu_id, workload, _gpus(path, data_version), _llms(path, data_version),
                                 _model_set(model_name))


def predict_one(llm_id: str, gpu_id: str, workload: view_state.Workload, model: str | None = None):
    model = model or model_name()
    models(model)
    try:
        return _predict_one(store_path(), version(), model, llm_id, gpu_id, workload)
    except WattGPUError as exc:
        st.error(md(exc))
        st.stop()


# -- deployment plans -------------------------------------------------------------------------------------------------
@st.cache_resource(max_entries=2, show_spinner=False)
def planning_defaults():

    return load_planning_defaults()


@st.cache_data(max_entries=32, show_spinner="Ranking every GPU x GPUs per replica x precision option...")
def _plan(path: str, data_version: str, model_name: str, llm_id: str, traffic, max_tp: int, precisions: tuple,
          prices: tuple, usd_per_kwh, pue, region, gco2e_per_kwh, serving_stack=None):

    costs = Costs.from_defaults(planning_defaults(), dict(prices), usd_per_kwh, pue, gco2e_per_kwh, region)
    plan = plan_deployments(llm_id, traffic, _gpus(path, data_version), _llms(path, data_version), costs,
                            precisions=precisions or None, max_gpus_per_replica=max_tp,
                            model_set=_model_set(model_name), serving_stack=serving_stack)
    return plan, costs


def plan(llm_id: str, traffic, max_tp: int, precisions: tuple, prices: tuple, usd_per_kwh=None, pue=None,
         region=None, gco2e_per_kwh=None, serving_stack=None):
    """The (cached) ranked deployment options and the cost assumptions used; errors the user can act on stop the
    page."""
    model = model_name()
    models(model)
    try:
        return _plan(store_path(), version(), model, llm_id, traffic, max_tp, tuple(precisions), tuple(prices),
                     usd_per_kwh, pue, region, gco2e_per_kwh, serving_stack)
    except WattGPUError as exc:
        st.error(str(exc))
        st.stop()


# -- side by side ---------------------------------------------------------------------------------------------------
def evaluation_if_ready(paper_compat: bool = False):
    """The evaluation behind the uncertainty draws when it needs no computing (shipped with the models, or already
    computed for this data), else None."""

    key = (store_path(), version(), bool(paper_compat))
    try:
        return _cv_cache(*key)
    except _NotComputed:
        pass
    hit = ready_evaluation(store(), paper_compat, retraining.evaluated_model_sets(),
                           retraining.active_models_dir(store()))
    return _cv_cache(*key, _computed=hit) if hit is not None else None


@st.cache_data(max_entries=32, show_spinner="Predicting and drawing from the models' errors...")
def _side_by_side(path: str, data_version: str, model_name: str, llm_id: str, workload: view_state.Workload,
                  picks: tuple, has_draws: bool, _result=None):

    gpus = _gpus(path, data_version)
    deployments = sbs.parse_picks(picks, set(gpus["gpu_id"]))
    table = sbs.predict_deployments(llm_id, workload.as_request(), deployments, gpus, _llms(path, data_version),
                                    _model_set(model_name))
    return sbs.side_by_side(table, _result)


def side_by_side(llm_id: str, workload: view_state.Workload, picks: tuple[str, ...], with_draws: bool):
    """Predictions for the picked deployments, with the draws when the evaluation is at hand."""
    model = model_name()
    models(model)
    result = evaluation_if_ready(False) if with_draws else None
    try:
        return _side_by_side(store_path(), version(), model, llm_id, workload,
                             picks, result is not None, _result=result)
    except WattGPUError as exc:
        st.error(str(exc))
        st.stop()


@st.cache_data(max_entries=32, show_spinner="Asking both model sets...")
def _disagreement(path: str, data_version: str, llm_id: str, workload: view_state.Workload, picks: tuple):

    gpus = _gpus(path, data_version)
    deployments = sbs.parse_picks(picks, set(gpus["gpu_id"]))
    return sbs.model_disagreement(llm_id, workload.as_request(), deployments, gpus, _llms(path, data_version),
                                  _model_set("plus"), _model_set("paper"))


def disagreement(llm_id: str, workload: view_state.Workload, picks: tuple[str, ...]):
    """Where WattGPU+ and the paper's XGB disagree on these deployments (None without WattGPU+ model files)."""
    try:
        models("paper")
        _model_set("plus")
    except ModelNotTrainedError:
        return None
    try:
        return _disagreement(store_path(), version(), llm_id, workload, picks)
    except WattGPUError as exc:
        st.error(str(exc))
        st.stop()
