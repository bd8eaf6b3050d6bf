import pytest
from pydantic import ValidationError

from aisched.framework.profile import Profile, ScorePluginRef


def test_plugin_names_lists_each_plugin_once_in_first_use_order() -> None:
    profile = Profile(
        queue_sort="PrioritySort",
        pre_filter=("Gang",),
        filter=("NodeAffinity", "ResourceFit"),
        score=(ScorePluginRef(name="ResourceFit"), ScorePluginRef(name="LeastAllocated")),
        post_filter=(),
        permit=("Gang",),
    )

    assert profile.plugin_names() == ["PrioritySort", "Gang", "NodeAffinity", "ResourceFit", "LeastAllocated"]


def test_default_profile_runs_static_filters_before_usage_filters() -> None:
    assert Profile().filter == (
        "NodeUnschedulable",
        "TaintToleration",
        "NodeAffinity",
        "GPUModel",
        "ResourceFit",
        "GPUHealth",
        "GPUSharing",
        "Reservation",
    )


@pytest.mark.parametrize("weight", [0, 101, -1])
def test_score_weight_outside_1_to_100_is_refused(weight: int) -> None:
    with pytest.raises(ValidationError):
        ScorePluginRef(name="LeastAllocated", weight=weight)


def test_unknown_profile_field_is_refused() -> None:
    with pytest.raises(ValidationError):
        Profile.model_validate({"filters": ["NodeAffinity"]})


def test_default_profile_is_the_operators_quota_fair_share_and_preemption() -> None:
    profile = Profile()

    assert profile.queue_sort == "FairShare"
    assert profile.pre_filter == ("Gang", "Quota", "Reservation")
    assert profile.post_filter == ("DefaultPreemption",)
