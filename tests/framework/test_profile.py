import pytest
from pydantic import ValidationError

from aisched.framework.profile import Profile, Profiles, ScorePluginRef


def test_plugin_names_lists_each_plugin_once_in_first_use_order() -> None:
    profile = Profile(
        pre_filter=("Gang",),
        filter=("NodeAffinity", "ResourceFit"),
        score=(ScorePluginRef(name="ResourceFit"), ScorePluginRef(name="LeastAllocated")),
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
    )


@pytest.mark.parametrize("weight", [0, 101, -1])
def test_score_weight_outside_1_to_100_is_refused(weight: int) -> None:
    with pytest.raises(ValidationError):
        ScorePluginRef(name="LeastAllocated", weight=weight)


def test_unknown_profile_field_is_refused() -> None:
    with pytest.raises(ValidationError):
        Profile.model_validate({"filters": ["NodeAffinity"]})


def test_profiles_serve_each_scheduler_name_once() -> None:
    with pytest.raises(ValidationError, match="schedulerName aisched has more than one profile"):
        Profiles(profiles=(Profile(), Profile(filter=("ResourceFit",))))


def test_profiles_need_at_least_one_profile() -> None:
    with pytest.raises(ValidationError, match="at least one profile"):
        Profiles(profiles=())


def test_profile_is_found_by_scheduler_name() -> None:
    batch = Profile(scheduler_name="aisched-batch", filter=("ResourceFit",))
    profiles = Profiles(profiles=(Profile(), batch))

    assert profiles.for_scheduler("aisched-batch") is batch
    assert profiles.for_scheduler("aisched") == Profile()
    assert profiles.for_scheduler("default-scheduler") is None
