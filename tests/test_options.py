"""Options declared once: the configs are the source of the command line's options and
defaults, flat keyword overrides reach nested fields, and `resolve` is the one defaults step."""

import dataclasses

import click
import pytest

from ddcodec import api
from ddcodec.cli.commands import cli
from ddcodec.reports.curve_config import CurveConfig, CurveOptions
from ddcodec.reports.demo import DemoConfig, DemoOptions
from ddcodec.distillation import DistillConfig, resolve
from ddcodec.distillation.config import ExpertConfig
from ddcodec.errors import DDCodecError
from ddcodec.options import flatten, leaves, listed_text
from ddcodec.training.protocol import MeasureConfig


def _params(command: str) -> dict[str, click.Parameter]:
    return {p.name: p for p in cli.commands[command].params}


@pytest.mark.parametrize("command,config", [("distill", DistillConfig),
                                            ("experts", ExpertConfig),
                                            ("measure", MeasureConfig),
                                            ("curve", CurveOptions),
                                            ("demo", DemoOptions)])
def test_every_declared_option_is_on_the_command_line_with_its_default(command, config):
    params = _params(command)
    declared = {name: f for name, (_, f, _) in leaves(config).items()
                if f.metadata["option"]["cli"]}
    assert declared, config
    for name, f in declared.items():
        assert name in params, f"--{name} missing from `ddcodec {command}`"
        default = params[name].default
        expected = f.default
        if f.metadata["option"]["listed"]:
            expected = listed_text(expected)
        elif params[name].type.name == "choice" and expected is not None and not isinstance(
                expected, tuple):
            expected = str(expected)
        assert default == expected, name
        assert f.metadata["option"]["help"] in (params[name].help or "")
    hidden = {name for name, (_, f, _) in leaves(config).items()
              if not f.metadata["option"]["cli"]}
    assert not hidden & set(params) - {"seed"}


def test_curve_and_demo_options_build_their_configs():
    curve = CurveOptions(budgets=(5000.0,), iterations=7, losses=()).config(seed=3)
    assert curve.budgets == (5000.0,) and curve.distill.matching.iterations == 7
    assert curve.losses == CurveConfig().losses and curve.seed == 3
    demo = DemoOptions(target_bpc=9000.0, epochs=5).config(seed=2)
    assert demo.target_bpc == 9000.0 and demo.eval.epochs == 5 and demo.seed == 2
    assert demo.pixel_dm == DemoConfig().pixel_dm


def test_flat_options_reach_nested_fields_and_unknown_ones_are_refused():
    config = DistillConfig.of(param="latent", spc=3, outer_loop=2, ipc=4, syn_steps=5)
    assert (config.latent.spc, config.gm.outer_loop, config.pixels.ipc,
            config.tm.syn_steps) == (3, 2, 4, 5)
    assert flatten(DistillConfig.of(**flatten(config))) == flatten(config)
    with pytest.raises(DDCodecError, match="unknown option spcc"):
        DistillConfig.of(spcc=3)
    assert DistillConfig.of(shared_decoder=True).latent.shared_decoder is True
    for not_a_flag in ("yes", "no", 1):  # a string is truthy: it used to pass, then crash
        with pytest.raises(DDCodecError, match="shared_decoder takes True or False"):
            DistillConfig.of(shared_decoder=not_a_flag)
    with pytest.raises(DDCodecError, match="--spc must be at least 1"):
        DistillConfig.of(param="latent", spc=0)


def test_resolve_is_the_one_defaults_step_and_provenance_records_it(tiny_npz, tmp_path):
    gm = resolve(DistillConfig.of(param="latent", loss="gm"))
    assert (gm.latent.lmbda, gm.latent.fit_budget_share, gm.latent.spc) == (0.01, 0.7, 10)
    assert gm.matching.iterations == 1000 * 10 and resolve(gm) == gm  # idempotent
    typed = DistillConfig.of(loss="none", ipc=2)
    s = api.distill(f"npz:{tiny_npz}", config=typed, seed=3)  # a typed config plus overrides
    recorded = s.provenance["config"]
    assert recorded["seed"] == 3 and recorded["pixels"]["ipc"] == 2
    assert recorded["pixels"]["lr_img"] == 1.0  # resolved, not None
    assert "latent" not in recorded and "gm" not in recorded  # only the groups it used


def test_measure_config_builds_the_protocol():
    m = MeasureConfig(epochs=4, lr=None)
    assert m.eval_config(stored_lr=0.05).lr == 0.05 and m.eval_config().lr == 0.01
    assert dataclasses.replace(m, lr=0.2).eval_config(stored_lr=0.05).lr == 0.2
    with pytest.raises(DDCodecError, match="unknown architecture"):
        MeasureConfig(arch="lenet").eval_config()
