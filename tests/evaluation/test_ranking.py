"""DD-Ranking's metrics computed right: HLR, IOR and LRS from fractions, consistent with the
accuracies measure reports for the set, the random subset and the whole split."""

import math

import pytest

from ddcodec.evaluation.ranking import label_robust_score


def test_the_formula_on_fractions():
    m = label_robust_score(synthetic=0.45, random=0.26, full=0.55, lrs_lambda=0.5)
    assert m["hlr"] == pytest.approx(0.10) and m["ior"] == pytest.approx(0.19)
    assert m["alpha"] == pytest.approx(0.5 * 0.19 - 0.5 * 0.10)
    assert m["lrs"] == pytest.approx((math.exp(0.045) - math.exp(-1)) / (math.e - math.exp(-1)))
    assert m["lrs_percent"] == pytest.approx(100 * m["lrs"])
    # the scale's ends: alpha -1 (worst) -> 0, alpha 1 (best) -> 1
    assert label_robust_score(0.0, 1.0, 1.0, 0.5)["lrs"] == pytest.approx(0.0)
    assert label_robust_score(1.0, 0.0, 1.0, 1.0)["lrs"] == pytest.approx(1.0)


def test_percentages_are_refused():
    with pytest.raises(ValueError, match="not a fraction"):
        label_robust_score(45.0, 26.0, 55.0)  # what DD-Ranking 0.2.0 feeds it


def test_measure_baselines_are_consistent_with_its_own_accuracies(run_cli, tiny_npz, tmp_path):
    import json

    out = tmp_path / "set.pt"
    assert run_cli("distill", "--data", f"npz:{tiny_npz}", "--loss", "none", "--ipc", "1",
                   "-o", str(out), "-q")[0] == 0
    code, stdout, err = run_cli("measure", str(out), "--epochs", "4", "--runs", "2",
                                "--baselines", "--json")
    assert code == 0, err
    report = json.loads(stdout)
    syn = report["accuracy_mean"]
    rnd, full = (report["baselines"][k]["accuracy_mean"] for k in ("random", "full"))
    rank = report["ranking"]
    assert rank["hlr"] == pytest.approx(full - syn) and rank["ior"] == pytest.approx(syn - rnd)
    assert rank == {**rank, **label_robust_score(syn, rnd, full, 0.5)}
    assert report["baselines"]["random"]["images_per_class"] == [1, 1, 1]
    assert report["baselines"]["full"]["num_images"] == 36
    # a random subset with the seed of a random-real set is that set: IOR 0 exactly
    assert rnd == syn and rank["ior"] == 0
    code, stdout, _ = run_cli("measure", str(out), "--epochs", "2", "--runs", "1",
                              "--baselines")
    assert code == 0 and "HLR" in stdout and "LRS" in stdout


def test_lambda_out_of_range_is_refused(run_cli, tmp_path):
    code, _, err = run_cli("measure", str(tmp_path / "x.pt"), "--lrs-lambda", "2")
    assert code == 1 and "--lrs-lambda must be within [0, 1]" in err
