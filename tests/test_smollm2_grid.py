"""A tiny grid on the real pretrained model, end to end; the SmolLM2 configs and profiles; the config builtins."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest
from rich.console import Console

from neuronscope.data.real_facts import RealFactsConfig, build_real_facts
from neuronscope.data.schema import load_dataset, save_dataset
from neuronscope.errors import NeuronscopeError
from neuronscope.experiment.config import PROFILES, parse_config, profile_text
from neuronscope.experiment.grid import run_grid
from neuronscope.models.handle import load_model

pytest.importorskip("countryinfo")
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny_facts(smollm2_ckpt: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    cfg = RealFactsConfig(countries=6, attributes=("capital", "border"), seed=0, forget=0.34, retain=0.33,
                          test=0.0)
    ds = build_real_facts(load_model(smollm2_ckpt, bridge=False), cfg)
    ds.utility, ds.benign = ds.utility[:3], ds.benign[:4]
    return save_dataset(ds, tmp_path_factory.mktemp("facts") / "facts")


def test_tiny_grid_runs_end_to_end_on_the_real_model(smollm2_ckpt: Path, tiny_facts: Path,
                                                     tmp_path: Path) -> None:
    ds = load_dataset(tiny_facts)
    assert len(ds.meta["never_known"]) >= 2, "the floor needs facts the model does not know"
    doc = {"run": {"name": "tiny-smollm2", "threads": 1},
           "data": {"path": str(tiny_facts)},
           "base": {"ckpt": str(smollm2_ckpt)},
           "oracle": {"enabled": False},
           "unlearn": {"methods": ["ga"], "lr": 5e-5, "max_steps": 2, "batch_size": 8, "rs_every": 0,
                       "eval_kinds": ["base"]},
           "attacks": {"seeds": [0], "harmful_p": [0.5], "benign": False, "harmful_lr": [1e-5], "steps": 2,
                       "eval_every": 1, "batch_size": 4},
           "attribution": {"enabled": True, "attack": "harmful", "patching": False},
           "lens": {"enabled": True}}
    cfg = parse_config(doc, "tiny")
    result = run_grid(cfg, tmp_path / "run", console=Console(file=open(tmp_path / "log.txt", "w")))  # noqa: SIM115
    res = result.results
    assert res["evals"]["base"]["fs"] == 1.0  # only known facts were kept
    assert set(res["attacks"]["ga"]) == {"harmful p=0.5"}
    floor = res["floor"]["harmful p=0.5"]
    assert len(floor) == 1 and floor[0]["start_fs"] == 0.0 and floor[0]["n_eval"] >= 1
    assert {"base vs ga", "ga vs ga+harmful"} <= set(res["analyses"]["attribution"]["pairs"])
    assert set(res["analyses"]["lens"]["models"]) == {"base", "ga"}
    md = (tmp_path / "run" / "table.md").read_text()
    assert "| floor (never known) |" in md and "gap harmful p=0.5" in md and "never knew" in md
    from neuronscope.plots.catalog import build_run_figures

    captions = {k: f.caption for k, f in build_run_figures(tmp_path / "run").items()}
    assert "no oracle can exist" in captions["figure2_recovery"] and "oracle never" not in captions["figure2_recovery"]
    assert "no oracle can exist" in captions["figure2_trajectories"]


@pytest.mark.parametrize("name", ["smollm2-faithun", "smollm2-tofu"])
def test_smollm2_profiles_are_the_shipped_configs(name: str) -> None:
    assert name in PROFILES
    assert (ROOT / "configs" / f"{name}.toml").read_text() == profile_text(name)


@pytest.mark.parametrize("name", ["smollm2-faithun", "smollm2-tofu"])
def test_quick_configs_are_the_profiles_cut_down(name: str) -> None:
    """configs/<name>-quick.toml is the profile with fewer methods, rates and attacks, one thread and no patching;
    everything else (data, model, fine-tune, loop, attack recipe) is the profile's own."""
    full = tomllib.loads(profile_text(name))
    quick = tomllib.loads((ROOT / "configs" / f"{name}-quick.toml").read_text())
    assert quick["run"] == full["run"] | {"threads": 1}
    assert quick["unlearn"]["methods"] == ["ga", "npo", "ssiuu"] and quick["unlearn"]["lr_grid"] == [1e-5, 3e-5]
    cut = {"methods", "lr_grid", "method"}
    assert {k: v for k, v in quick["unlearn"].items() if k not in cut} == \
        {k: v for k, v in full["unlearn"].items() if k not in cut}
    assert quick["unlearn"]["method"] == {"ssiuu": full["unlearn"]["method"]["ssiuu"]}
    assert quick["attacks"] == full["attacks"] | {"seeds": [0, 1], "harmful_p": [0.3]}
    assert quick["attribution"] == full["attribution"] | {"patching": False}
    assert {k: v for k, v in quick.items() if k not in ("run", "unlearn", "attacks", "attribution")} == \
        {k: v for k, v in full.items() if k not in ("run", "unlearn", "attacks", "attribution")}


def _doc_with_cache(name: str, cache: Path, monkeypatch: pytest.MonkeyPatch, ckpt: Path) -> dict:
    """The shipped profile with the cache at `cache`, its pulled model a link to the session's checkpoint."""
    monkeypatch.setenv("NEURONSCOPE_CACHE", str(cache))
    (cache / "models").mkdir(parents=True, exist_ok=True)
    link = cache / "models" / "smollm2-135m"
    if not link.exists():
        link.symlink_to(ckpt, target_is_directory=True)
    return tomllib.loads(profile_text(name))


def test_faithun_profile_resolves_the_pulled_model_and_builds_its_data(
        smollm2_ckpt: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    doc = _doc_with_cache("smollm2-faithun", tmp_path / "cache", monkeypatch, smollm2_ckpt)
    doc["data"]["real_facts"] = {"countries": 4, "attributes": ["capital"], "forget": 0.25, "retain": 0.25,
                                 "test": 0.5}
    cfg = parse_config(doc, "profile smollm2-faithun")
    assert Path(cfg.base_ckpt) == (tmp_path / "cache" / "models" / "smollm2-135m").resolve()
    assert Path(cfg.data_dir).parent == (tmp_path / "cache" / "data").resolve()
    meta = json.loads((Path(cfg.data_dir) / "world.json").read_text())
    assert meta["candidates"]["facts"] == 4 and not cfg.oracle
    assert cfg.unlearn.params["lr_grid"] == (1e-5, 3e-5)
    again = parse_config(doc, "profile smollm2-faithun")  # cached: the same directory, not rebuilt
    assert again.data_dir == cfg.data_dir


def test_builtin_mistakes_are_one_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEURONSCOPE_CACHE", str(tmp_path))
    with pytest.raises(NeuronscopeError, match="unknown pretrained model 'llama-9000'"):
        parse_config({"base": {"ckpt": "pretrained:llama-9000"}}, "c")
    with pytest.raises(NeuronscopeError, match="data.real_facts: is built for base.ckpt"):
        parse_config({"data": {"real_facts": {"countries": 4}}}, "c")
    with pytest.raises(NeuronscopeError, match="countries must be at least 4"):
        parse_config({"data": {"real_facts": {"countries": 1}}, "base": {"ckpt": str(tmp_path)}}, "c")
    with pytest.raises(NeuronscopeError, match="unknown key"):
        parse_config({"data": {"real_facts": {"planets": 4}}, "base": {"ckpt": str(tmp_path)}}, "c")


def test_tofu_profile_parses_with_the_synthetic_people_and_real_utility(
        smollm2_ckpt: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    doc = _doc_with_cache("smollm2-tofu", tmp_path / "cache", monkeypatch, smollm2_ckpt)
    doc["data"]["synthetic_people"]["people"] = 8
    cfg = parse_config(doc, "profile smollm2-tofu")
    assert cfg.finetune is not None and cfg.oracle
    ds = load_dataset(cfg.data_dir)
    assert len({it.cluster for s in ds.splits.values() for it in s}) == 8
    assert ds.utility and all(it.id.startswith("u.") and it.cluster == "utility" for it in ds.utility)


def test_floor_dataset_and_table_gaps_against_the_floor() -> None:
    from neuronscope.data.schema import QADataset, QAItem
    from neuronscope.experiment.floor import floor_dataset
    from neuronscope.plots.table import build_table, threshold_note, to_markdown

    items = [QAItem(f"n{i}", f"q{i}", "a", ("a", "b", "c"), f"c{i}", "base", f"f{i}") for i in range(3)]
    ds = QADataset(splits={"forget": []}, meta={"never_known": [it.to_json() for it in items]})
    assert floor_dataset(ds).items("forget") == items
    assert floor_dataset(QADataset(splits={"forget": []})) is None

    def runs(vals: list[float]) -> list[dict]:
        return [{"lr": 1e-5, "seed": s, "max_fs": v} for s, v in enumerate(vals)]

    ev = {"fs": 1.0, "rs": 1.0, "us": 1.0}
    results = {"attack_labels": ["harmful p=0.3"], "oracle": False, "methods": ["ga"],
               "evals": {"base": ev, "ga": ev}, "attacks": {"ga": {"harmful p=0.3": runs([0.5, 0.7])}},
               "floor": {"harmful p=0.3": runs([0.1, 0.3])}}
    rows = {r["method"]: r for r in build_table(results)}
    assert rows["floor (never known)"]["harmful p=0.3"]["mean"] == pytest.approx(0.2)
    gap = rows["ga"]["gap harmful p=0.3"]
    assert gap["mean"] == pytest.approx(0.4)  # 0.6 - 0.2
    # Welch: se = sqrt(var_a / n + var_b / n) with both sample variances 0.02
    assert gap["se"] == pytest.approx((0.02 / 2 + 0.02 / 2) ** 0.5)
    assert "never knew" in threshold_note(results)
    md = to_markdown(build_table(results))
    assert "method − floor (never-known facts)" in md and "method − oracle" not in md
    with_oracle = {**results, "oracle": True, "attacks": {**results["attacks"], "oracle": results.pop("floor")},
                   "evals": {**results["evals"], "oracle": ev}}
    assert "method − oracle" in to_markdown(build_table(with_oracle))
