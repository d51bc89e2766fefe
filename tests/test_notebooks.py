"""Every course notebook runs top to bottom in a fresh kernel, small, and says the right thing.

Each notebook has a papermill ``parameters`` cell; ``CASES`` below gives each the small
parameters it runs with here and a ``check`` on the JSON summary it writes to
``results_path`` (every notebook takes that parameter and writes its key numbers
there). To add a notebook: write its check function and append one ``Case``.

The committed notebooks are also checked statically: executed (they carry outputs),
no error outputs, no papermill/timing metadata, and small enough to keep the repo light.
"""
import json
import os
import pathlib
from dataclasses import dataclass, field
from typing import Callable

import nbformat
import numpy as np
import pytest

NOTEBOOKS = pathlib.Path(__file__).resolve().parents[1] / "notebooks"
MAX_NOTEBOOK_MB = 1.5


@dataclass
class Case:
    notebook: str
    parameters: dict = field(default_factory=dict)
    check: Callable[[dict], None] = lambda results: None


def run_notebook(name, parameters, tmp_path):
    """Execute ``notebooks/name`` with ``parameters`` in a fresh kernel; return its summary."""
    if os.environ.get("CI"):
        import papermill            # in CI a missing papermill fails the test, never skips it
    else:
        papermill = pytest.importorskip("papermill")
    results_path = tmp_path / "results.json"
    papermill.execute_notebook(
        str(NOTEBOOKS / name), str(tmp_path / name),
        parameters={**parameters, "results_path": str(results_path)},
        cwd=str(NOTEBOOKS), kernel_name="python3", progress_bar=False)
    assert results_path.exists(), f"{name} did not write its summary to results_path"
    return json.loads(results_path.read_text())


# --- checks: what each chapter must show, even at its small test size -------------------

def check_00(r):
    # The kernel imports this checkout's minimaml, not some other copy.
    assert pathlib.Path(r["minimaml_file"]).resolve().is_relative_to(NOTEBOOKS.parent)
    # The one figure: after one step MAML beats pretrained, which beats a fresh network.
    step = r["one_step"]
    assert step["MAML"]["after"] < step["pretrained"]["after"] < step["fresh"]["after"]
    assert step["MAML"]["after"] < 0.5 * step["MAML"]["before"]
    # The computed Fig. 1: pretrained θ is better where it stands, MAML's θ after one step.
    bowl = r["bowl_one_step_loss"]
    assert bowl["pretrained θ"]["at θ"] < bowl["MAML θ"]["at θ"]
    assert bowl["MAML θ"]["after one step"] < bowl["pretrained θ"]["after one step"]
    assert r["algorithm_rows"] >= 10                        # every library line was found


def check_01(r):
    conv = r["converged"]
    five, ten, many = conv["5"], conv["10"], conv[str(max(int(k) for k in conv))]
    assert r["fresh_max_output"] < 1e-2                      # a fresh network predicts ≈ 0
    # K=5: gradient descent fits the support points but not the function.
    assert five["support_mse"] < 0.5
    assert five["query_mse"] > 10 * five["support_mse"]
    assert five["query_mse"] > 2.0
    assert ten["query_mse"] > 2.0                            # K=10 no better
    # Many points: the same network and optimiser generalise.
    assert many["query_mse"] < 0.3 and many["query_mse"] < 0.1 * r["query_mse_fresh"]
    # The paper's budget (10 steps of α) barely moves a fresh network.
    for k in ("5", "10"):
        assert r["query_mse_after_10_steps"][k] > 0.8 * r["query_mse_fresh"]
    assert r["loop_vs_inner_loop_max_diff"] < 1e-5


def check_02(r):
    assert r["dtype"] == "float64"
    # The hand-derived meta-gradient (I − αH)∇L_query(θ') is jax.grad(maml_objective)...
    assert r["one_task_max_abs_diff"] < 1e-12
    assert r["batch_max_abs_diff"] < 1e-12
    assert r["meta_gradient_norm"] > 1e-3          # ...and not trivially zero
    # ...and matches central finite differences; float32 cannot check it as tightly.
    assert r["fd_max_rel_err"] < 1e-5
    assert r["fd_best"]["float32"][0] > 100 * r["fd_best"]["float64"][0]
    # first_order=True is exactly g' = ∇L_query(θ').
    assert r["first_order_vs_g_prime_max_abs_diff"] < 1e-12
    # An HVP costs a small multiple of a gradient.
    assert 1.0 < r["flops_hvp_over_grad"] < 4.0
    # The dropped term is small at the random init, not at the MAML-trained θ...
    ratio = r["dropped_ratio_median"]
    assert ratio["random init"] < 0.1 < ratio["MAML-trained θ"]
    # ...because g' is the output bias's gradient there, whose curvature is 2: 2α/(1 − 2α).
    alpha = r["inner_lr"]
    assert r["output_bias_share_median"]["random init"] > 0.99
    assert abs(ratio["random init"] - 2 * alpha / (1 - 2 * alpha)) < 0.05 * 2 * alpha / (1 - 2 * alpha)
    assert abs(r["ratio_at_01"] - 0.25) < 0.025
    # The Gauss-Newton part JᵀJ (non-zero for a model linear in θ) is most of H g'.
    miss = r["gauss_newton_miss_median"]
    assert miss["random init"] < 0.1 and miss["MAML-trained θ"] < 0.5


def check_03(r):
    m = r["metrics"]
    for k in ("5", "10", "20"):
        maml, pre = m["maml"][k]["mse"], m["pretrained"][k]["mse"]
        assert len(maml) == 11                          # 0..10 fine-tuning steps
        # Even a short meta-training run beats the pretrained baseline after adaptation...
        assert maml[1] < 0.8 * pre[1], (k, maml[1], pre[1])
        # ...and adaptation helps: the error falls with fine-tuning steps.
        assert maml[10] < 0.7 * maml[0], (k, maml)
    assert r["pretrained_behind"]
    assert r["final_training_loss"]["maml"] < r["final_training_loss"]["pretrained"]
    # Each printed verdict is true of the numbers it is about.
    assert set(r["verdicts"]) == {f"{n}_{s}" for n in ("maml", "pretrained") for s in (1, 5, 10)}
    for key, verdict in r["verdicts"].items():
        name, steps = key.rsplit("_", 1)
        ours, ci = m[name]["5"]["mse"][int(steps)], m[name]["5"]["ci95"][int(steps)]
        paper = r["paper_k5"][name][steps]
        expected = ("inside" if abs(paper - ours) <= ci else "below" if paper < ours
                    else "above")
        assert verdict.startswith(expected), (key, verdict, ours, ci, paper)
    # The pretrained baseline learns the best single function, −(2/π)E[A]cos x.
    opt = r["pretrained_optimum"]
    assert abs(opt["analytic"]["E[y²] − E[f*²] (predict f*)"] - opt["sampled"]["predict f*"]) < 0.1
    assert opt["sampled"]["pretrained θ (no step)"] < 1.1 * opt["sampled"]["predict f*"]
    assert opt["sampled"]["pretrained θ (no step)"] < opt["sampled"]["predict 0"]
    assert abs(opt["f0"]["f*"] + 2 / 3.141592653589793 * 2.55) < 1e-6
    # Why more steps can hurt: MAML's θ is more curved than the pretrained θ, and a
    # smaller test-time step gives a worse first step.
    k5 = r["k5_analysis"]
    assert k5["curvature_median"]["maml"] > k5["curvature_median"]["pretrained"]
    lrs = sorted(r["by_test_lr"], key=float, reverse=True)
    first = [r["by_test_lr"][lr][1] for lr in lrs]
    assert first == sorted(first)
    assert k5["tasks"] + k5["blown_up"] <= 100


def check_04(r):
    ms = r["ms_per_step"]
    assert len(ms) == 9 and all(v > 0 for v in ms.values())   # every variant ran (speed: see benchmarks)
    assert sum(v == "yes" for v in r["samples_tasks"].values()) == 2
    assert r["loop_vs_vmap_max_abs_diff"] < 1e-5              # loop, vmap and the library agree
    assert all(compiled > 0 for _, compiled in r["eager_scan"])   # eager lax.scan compiles every call
    assert all(v == 0 for v in r["scan_compilations_while_timed"].values())   # timed runs: cached
    assert list(r["retraced"].values()) == [True, False, False, True, False]
    assert r["fresh_jit_compilations"] == 3
    assert r["chunk_compilations"] == {"two full chunks": 1, "one and a half": 1,
                                       "one and a half, again": 0}
    assert r["scan_final_loss"] < r["scan_first_loss"]        # the scanned training run trains
    eight = r["eight_devices"]                                 # section 7, 8 simulated devices:
    assert eight["difference"] < 1e-5                          # the sharded meta-gradient agrees,
    assert eight["loss_difference"] < 1e-4                     # so does a short run's loss curve,
    assert eight["rows"] == [1] and eight["all_reduces"] == 1  # 3 tasks: 1 row a device, 1 all-reduce
    assert set(eight["ms"]) == {"1", "2", "8"} and all(v > 0 for v in eight["ms"].values())
    two = r["two_processes"]                                   # two processes on 127.0.0.1
    assert two["processes"] == 2 and two["identical"] and two["max_abs_diff_to_one_process"] < 1e-5
    assert "did not answer within 3 s" in r["absent_coordinator"]


def check_05(r):
    methods = ("MAML", "FOMAML", "Reptile")
    assert set(r["ms_per_step"]) >= set(methods)               # measured, not asserted on (noisy)
    for m in methods:
        mse = r["metrics"][m]["10"]["mse"]
        assert mse[10] < 0.7 * mse[0], (m, mse)                 # every method learned to adapt
        angles = r["angle_degrees"][m]
        assert len(angles) >= 2 and all(0 <= a <= 180 for a in angles)
        assert min(angles) > 1.0, (m, angles)   # the dropped term turns the gradient by a clear angle
    assert 0 <= r["fomaml_lag_fraction"] <= 1
    mem, floor = r["memory_mib"], r["carry_floor_mib"]
    second, remat, first = mem["second order"], mem["second order + remat"], mem["first order"]
    assert all(b > a for a, b in zip(second, second[1:]))      # grows with inner steps...
    assert r["memory_fit"]["r_squared"] > 0.99                  # ...linearly
    assert remat[-1] < 0.75 * second[-1]                        # remat saves memory...
    assert remat[-1] < floor[-1]                                # ...below one θ per step
    assert remat[-1] <= 4 * remat[0]                            # nearly flat in the steps
    assert first[-1] < 0.2 * second[-1]                         # first order does not grow
    assert r["remat_max_abs_diff"] < 1e-5                       # same gradient


def check_06(r):
    assert r["train_test_shared_characters"] == 0
    assert r["formulation_max_abs_diff"] < 1e-4               # im2col == native conv
    # the plain NumPy sampler and the library's agree; labels are a uniform permutation
    assert r["sampler_matches_plain"] and r["distinct_characters"]
    for freq in r["label0_rank_frequency"].values():
        assert all(0.1 < f < 0.3 for f in freq), freq
    assert all(p > 0.001 for p in r["label_uniformity_p"].values()), r["label_uniformity_p"]
    assert r["loss_fn_vs_library"] < 1e-5                     # the loss in the open == library's
    first, last = r["short_run"]["losses_first_last"]
    assert last < first                                        # the meta_train call learns
    shipped = r["shipped"]
    assert 0.1 < shipped["accuracy_by_step"][0] < 0.3          # before adapting: chance (1/5)
    assert shipped["test_accuracy"]["mean"] > 0.9              # the shipped θ adapts
    probability = r["one_task_true_class_probability"]
    assert probability[1] > probability[0]                     # one step moves it to the truth
    baselines = r["baselines"]
    maml_1 = baselines["MAML θ (shipped)"]["1"][0]
    for name, row in baselines.items():                        # "beats every baseline"
        if not name.startswith("MAML"):
            assert maml_1 > max(m for m, _ in row.values()), name
    first, last = r["pretrain_losses_first_last"]
    assert last < first
    assert r["pretrain_steps"] == 60                           # pretrained here, small
    table = {(row["ways"], row["shots"]): row for row in r["settings_table"]}
    assert sorted(table) == [(5, 1), (5, 5), (20, 1), (20, 5)]  # the paper's four settings
    assert table[(5, 1)]["paper"].startswith("98.7")


def check_07(r):
    maml, pre = r["table"]["MAML K=10"], r["table"]["pretrained K=10"]
    assert maml["1"] < 0.6 < 1.5 < pre["1"]                     # shipped MAML θ adapts in one step
    assert maml["10"] < maml["1"] < 0.5 * maml["0"]
    # At step 0 the pretrained net predicts ≈ f*(0) = −(2/π)E[A] (chapter 3), not 0.
    assert abs(r["at_zero"]["pretrained"] - r["f_star_0"]) < 0.3
    assert abs(r["at_zero"]["random"]) < 0.01
    step = r["one_step_factor"]
    assert step["MAML"] > step["pretrained"] > step["random"]
    assert r["first_three_of_50"]["MAML"] > r["first_three_of_50"]["pretrained"]
    # Larger α: MAML's fine-tuning diverges on more tasks than the pretrained one's.
    high = r["alphas"]["0.1"]
    assert high["MAML"]["diverged"] > high["pretrained"]["diverged"]
    assert r["alphas"]["0.01"]["MAML"]["diverged"] == 0


def check_08(r):
    race = r["race"]
    assert list(race) == ["maml", "fomaml", "metasgd", "anil", "mamlpp", "reptile", "imaml"]
    for name, result in race.items():
        if "diverged_at_step" in result:                        # said in the table, not hidden
            assert name == "mamlpp" and result["diverged_at_step"] >= 0
            continue
        assert result["ms_per_step"] > 0, name                  # every variant ran (speed: BENCHMARKS.md)
        assert np.isfinite(result["mse"][1]), name              # and was meta-tested
    assert r["scan_carry"] == {"all": 6, "head_only": 2}       # ANIL's inner loop carries the head only
    assert r["dot_generals_per_step"]["head_only"] < r["dot_generals_per_step"]["all"]
    assert r["head_only_body_moved"] is False
    for name, (before, after) in r["knob_support_loss"].items():  # each knob fine-tunes θ
        assert after < before, name
    assert r["imaml_dense_max_abs_diff"] < 1e-8                # CG implicit gradient == dense formula
    phases = r["mamlpp_phases"]
    assert phases[0][1] is True and phases[-1][1] is False      # first order, then second order
    assert "sinusoid" in r["shipped_tables"]
    assert set(r["rates_summary"]) == {"metasgd", "mamlpp"}
    assert set(r["own_model"]) == {"flax_nnx", "equinox"}      # both recipes ran (dev extra)
    # Adam's first step moves each learned rate by about its learning rate
    assert r["mamlpp_first_rate_step"]["None"] == pytest.approx(1e-3, rel=0.05)
    assert r["mamlpp_first_rate_step"]["0.0001"] == pytest.approx(1e-4, rel=0.05)
    assert r["mamlpp_same_beta"]["steps"] == 20
    # ANIL's head is more curved than MAML's on the shipped θs, most at K = 5
    curvature = r["head_curvature"]
    assert curvature["anil K=5"]["median"] > curvature["maml K=5"]["median"]
    assert curvature["anil K=5"]["above_2_over_alpha"] > curvature["maml K=5"]["above_2_over_alpha"]
    assert set(r["imaml_alpha"]) == {"K=5 α=0.002", "K=5 α=0.01", "K=10 α=0.002", "K=10 α=0.01"}
    assert {"sinusoid maml", "omniglot maml"} <= set(r["compare"])


CASES = [
    Case("00_start_here.ipynb", {}, check_00),
    Case("01_one_task.ipynb", {"fit_steps": 4000}, check_01),
    Case("02_grad_of_grad.ipynb", {"histogram_tasks": 40, "num_directions": 2}, check_02),
    Case("03_maml_sinusoid.ipynb", {"meta_steps": 2000, "eval_tasks": 100}, check_03),
    Case("04_batching_and_speed.ipynb", {"meta_batch": 3, "repeats": 1, "scan_steps": 300}, check_04),
    Case("05_first_vs_second_order.ipynb", {"meta_steps": 1500, "steps_per_call": 500, "eval_tasks": 100,
                                            "memory_steps": [1, 5, 20]}, check_05),
    Case("06_omniglot.ipynb", {"meta_steps": 40, "filters": 8, "eval_tasks": 40,
                               "pretrain_steps": 60, "finetune_steps": 5}, check_06),
    Case("07_playground.ipynb", {"own_meta_steps": 200}, check_07),
    Case("08_beyond_maml.ipynb", {"meta_steps": 100, "eval_tasks": 30, "own_model_steps": 60,
                                  "divergence_steps": 20}, check_08),
]


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.notebook)
def test_notebook_runs_and_shows_its_result(case, tmp_path):
    case.check(run_notebook(case.notebook, case.parameters, tmp_path))


def _committed():
    return sorted(p for p in NOTEBOOKS.glob("[0-9][0-9]_*.ipynb") if ".executed" not in p.name)


@pytest.mark.parametrize("path", _committed(), ids=lambda p: p.name)
def test_committed_notebook_is_clean(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert "papermill" not in nb.metadata
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code, "a chapter without code"
    assert any("parameters" in c.metadata.get("tags", []) for c in code) or len(code) < 3, \
        "long runs must take their size from a cell tagged `parameters`"
    # The Colab setup cell may have been written in after the run (build_notebooks.py --colab-cell).
    ran = [c for c in code if not c.source.startswith("# Colab only:")]
    assert all(c.execution_count is not None for c in ran), \
        "commit notebooks with outputs from a full run (scripts/build_notebooks.py --execute)"
    for cell in code:
        assert set(cell.metadata) <= {"tags", "jupyter", "collapsed", "scrolled"}, cell.metadata
        for out in cell.outputs:
            assert out.output_type != "error", f"error output in {cell.id}"
    assert path.stat().st_size < MAX_NOTEBOOK_MB * 2**20


def test_every_case_names_a_notebook():
    names = {p.name for p in NOTEBOOKS.glob("*.ipynb")}
    for case in CASES:
        assert case.notebook in names
