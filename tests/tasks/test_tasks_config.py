"""EvalConfig: one configuration of what a model is shown, with pixel bounds and run folders."""

from __future__ import annotations

from pathlib import Path

import pytest

from medvision.tasks import get_policy, smart_resize
from medvision.tasks.config import (
    CONFIG_FILE,
    EvalConfig,
    config_mismatches,
    read_run_config,
    write_run_config,
)


def test_defaults_are_those_of_eval() -> None:
    config = EvalConfig()
    assert (config.protocol, config.prompt_style, config.image_policy) == ("paper-v1", None, "auto")
    assert config.style.value == "paper-v1"
    assert EvalConfig(protocol="official").style.value == "official"
    # auto: the model family's policy under the protocol; native for the baselines.
    assert config.policy("Qwen/Qwen2.5-VL-7B-Instruct").name == "qwen2.5-vl"
    assert config.policy("", "oracle").name == "native"
    with pytest.raises(KeyError, match="--image-policy"):
        config.policy("")


def test_pixel_bounds_change_the_seen_size_and_round_trip_through_the_name() -> None:
    config = EvalConfig(image_policy="qwen2.5-vl", max_pixels=256 * 28 * 28)
    policy = config.policy()
    assert policy.name == "qwen2.5-vl:max_pixels=200704"
    # Independent oracle: the Qwen rule with the same bound.
    assert policy.seen_hw((1024, 768)) == smart_resize(1024, 768, max_pixels=200704)
    assert policy.seen_hw((1024, 768)) != get_policy("qwen2.5-vl").seen_hw((1024, 768))
    assert get_policy(policy.name) == policy
    assert config.processor_kwargs() == {"max_pixels": 200704}
    with pytest.raises(ValueError, match="Qwen-style"):
        EvalConfig(image_policy="gemma3", min_pixels=100).policy()
    with pytest.raises(ValueError, match="must not exceed"):
        EvalConfig(min_pixels=10, max_pixels=5)
    with pytest.raises(ValueError, match="unknown protocol"):
        EvalConfig(protocol="v2")


def test_run_folder_round_trip_and_mismatch_lines(tmp_path: Path) -> None:
    trained = EvalConfig(protocol="official", image_policy="qwen2.5-vl", max_pixels=200704)
    assert read_run_config(tmp_path) is None
    write_run_config(tmp_path, trained, export="x")
    assert (tmp_path / CONFIG_FILE).is_file()
    assert read_run_config(tmp_path) == trained
    used = EvalConfig(protocol="paper-v1", image_policy="qwen2.5-vl", max_pixels=200704)
    assert config_mismatches(trained, used) == [
        "protocol: trained with 'official', evaluated with 'paper-v1'"
    ]
    (tmp_path / CONFIG_FILE).write_text("{}")
    with pytest.raises(ValueError, match=CONFIG_FILE):
        read_run_config(tmp_path)
