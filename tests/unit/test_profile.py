"""NotebookProfiles as pure functions: effective spec, refusals with the field named, bounds that
compare what values mean, and which version of a profile a server runs with."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from sparkbook.profile import ProfileError, applied_profile, effective_spec, magnitude, profile_problems, refusals
from sparkbook.api.notebookprofile import NotebookProfileSpec

ROOT = Path(__file__).resolve().parents[2]

DYNAMIC = {
    "displayName": "Spark (Dynamic)",
    "notebook": {"resources": {"requests": {"cpu": "2", "memory": "8Gi"}, "limits": {"memory": "8Gi"}},
                 "env": [{"name": "TEAM", "value": "data"}, {"name": "LEVEL", "value": "1"}]},
    "spark": {"executor": {"cores": 1, "memory": "2g"},
              "dynamicAllocation": {"enabled": True, "minExecutors": 0, "maxExecutors": 10},
              "sparkConf": {"spark.sql.shuffle.partitions": "64"}},
    "overrides": [
        {"field": "spark.session.executor.memory", "max": "16g"},
        {"field": "spark.session.executor.cores", "min": 1, "max": 4},
        {"field": "spark.session.dynamicAllocation.maxExecutors", "max": 20},
        {"field": "spark.session.sparkConf"},
        {"field": "env"},
        {"field": "spark.sessionRef"},
    ],
}


def test_a_server_naming_only_the_profile_gets_the_profiles_defaults():
    spec = effective_spec("spark-dynamic", DYNAMIC, {"profile": "spark-dynamic"})
    assert spec.resources.requests == {"cpu": "2", "memory": "8Gi"}
    assert spec.spark is not None and spec.spark.session is not None
    assert spec.spark.session.dynamic_allocation.max_executors == 10
    assert spec.spark.session.spark_conf == {"spark.sql.shuffle.partitions": "64"}
    assert spec.storage.size == "10Gi"  # what the profile leaves out has the operator's default


def test_the_users_fields_go_on_top_maps_merge_key_by_key_and_env_by_name():
    user = {"profile": "spark-dynamic", "suspend": True,
            "spark": {"session": {"executor": {"memory": "12g"}, "dynamicAllocation": {"maxExecutors": 20},
                                  "sparkConf": {"spark.sql.ansi.enabled": "true"}}},
            "env": [{"name": "LEVEL", "value": "2"}]}
    spec = effective_spec("spark-dynamic", DYNAMIC, user)
    session = spec.spark.session
    assert (session.executor.memory, session.executor.cores) == ("12g", 1)
    assert (session.dynamic_allocation.min_executors, session.dynamic_allocation.max_executors) == (0, 20)
    assert session.spark_conf == {"spark.sql.shuffle.partitions": "64", "spark.sql.ansi.enabled": "true"}
    assert [(e.name, e.value) for e in spec.env] == [("TEAM", "data"), ("LEVEL", "2")]
    assert spec.suspend is True


def test_beyond_a_bound_is_refused_naming_the_field_and_the_bound():
    user = {"profile": "spark-dynamic", "spark": {"session": {"executor": {"memory": "32g", "cores": 8}}}}
    with pytest.raises(ProfileError) as e:
        effective_spec("spark-dynamic", DYNAMIC, user)
    assert e.value.reason == "ProfileRefused"
    assert "spec.spark.session.executor.memory: 32g is more than NotebookProfile spark-dynamic allows (at most 16g)" \
        in e.value.message
    assert "spec.spark.session.executor.cores: 8 is more than NotebookProfile spark-dynamic allows (at most 4)" \
        in e.value.message


def test_a_field_the_profile_does_not_list_is_refused_with_what_it_does_allow():
    problems = refusals("spark-dynamic", NotebookProfileSpec.model_validate(DYNAMIC),
                        {"image": "mine:1", "resources": {"limits": {"memory": "64Gi"}}})
    assert problems[0].startswith("spec.image: NotebookProfile spark-dynamic does not let a user set this")
    assert "spark.session.executor.memory" in problems[0]
    assert problems[1].startswith("spec.resources.limits.memory:")


def test_bounds_compare_what_values_mean():
    assert magnitude("16g", "spark.session.executor.memory") == magnitude("16Gi", "x.memory") == 16384
    assert magnitude("512m", "spark.session.executor.memory") == 512  # Spark's m is MiB
    assert magnitude("500m", "resources.requests.cpu") == 0.5  # a quantity's m is a thousandth
    assert magnitude("8h", "idleCulling.timeout") == 8 * 3600
    assert magnitude("lots", "x") is None
    ok = refusals("p", NotebookProfileSpec.model_validate(DYNAMIC),
                  {"spark": {"session": {"executor": {"memory": "16384m"}}}})
    assert ok == []


def test_attaching_to_a_shared_session_replaces_the_profiles_own():
    spec = effective_spec("spark-dynamic", DYNAMIC, {"profile": "spark-dynamic", "spark": {"sessionRef": {"name": "team"}}})
    assert spec.spark.session is None and spec.spark.session_ref.name == "team"


def test_a_profile_without_spark_makes_a_plain_python_notebook():
    spec = effective_spec("plain", {"displayName": "Python"}, {"profile": "plain"})
    assert spec.spark is None


def test_profile_problems_say_what_is_wrong():
    bad = dict(DYNAMIC, overrides=[{"field": "spark.session.executor.memroy", "max": "16g"},
                                   {"field": "spark.session.executor", "max": 3}])
    problems = profile_problems(bad)
    assert "'spark.session.executor.memroy' is not a NotebookServer spec field" in problems[0]
    assert "min and max need a field holding one value" in problems[1]
    assert profile_problems(dict(DYNAMIC, overrides=[{"field": "storage.size", "max": "lots"}]))[0].endswith(
        "not a number, a memory size, a quantity or a duration")
    broken = dict(DYNAMIC, spark={"dynamicAllocation": {"minExecutors": 5, "maxExecutors": 2}})
    assert profile_problems(broken) == [
        "spec.spark.dynamicAllocation: Value error, minExecutors <= initialExecutors <= maxExecutors must hold"]
    with pytest.raises(ProfileError) as e:
        effective_spec("broken", {"overrides": []}, {})
    assert e.value.reason == "InvalidProfile" and "displayName" in e.value.message


def test_the_charts_five_server_types_are_valid_and_exactly_one_is_the_default():
    values = yaml.safe_load((ROOT / "charts/sparkbook/values.yaml").read_text())
    profiles = values["profiles"]
    assert list(profiles) == ["spark-dynamic", "spark-static", "experiment", "parallel-experiment",
                              "distributed-training"]
    for name, p in profiles.items():
        assert profile_problems(p["spec"]) == [], name
        effective_spec(name, p["spec"], {"profile": name})
    assert [n for n, p in profiles.items() if p["spec"].get("default")] == ["spark-dynamic"]
    training = effective_spec("distributed-training", profiles["distributed-training"]["spec"], {})
    assert training.spark.session.executor.gpus == 1
    assert not training.spark.session.dynamic_allocation.enabled
    with pytest.raises(ProfileError, match="maxExecutors: 40 is more than NotebookProfile spark-dynamic allows"):
        effective_spec("spark-dynamic", profiles["spark-dynamic"]["spec"],
                       {"spark": {"session": {"dynamicAllocation": {"maxExecutors": 40}}}})


def _profile(generation: int, spec: dict) -> dict:
    return {"metadata": {"name": "p", "generation": generation}, "spec": spec}


def test_a_changed_profile_waits_for_the_next_start_of_a_running_server():
    old = {"name": "p", "generation": 1, "spec": {"displayName": "A"}}
    now = _profile(2, {"displayName": "B"})
    assert applied_profile(previous=old, current=now, name="p", running=True, spec_changed=False) == (old, True)
    fresh = {"name": "p", "generation": 2, "spec": {"displayName": "B"}}
    assert applied_profile(previous=old, current=now, name="p", running=False, spec_changed=False) == (fresh, False)
    assert applied_profile(previous=old, current=now, name="p", running=True, spec_changed=True) == (fresh, False)
    assert applied_profile(previous=None, current=now, name="p", running=True, spec_changed=False) == (fresh, False)
    other = {"name": "q", "generation": 1, "spec": {}}
    assert applied_profile(previous=other, current=now, name="p", running=True, spec_changed=False) == (fresh, False)
    # an unchanged profile: nothing waits
    assert applied_profile(previous=fresh, current=now, name="p", running=True, spec_changed=False) == (fresh, False)
    # a deleted profile: a running server keeps what it has; a new one cannot start
    assert applied_profile(previous=old, current=None, name="p", running=True, spec_changed=False) == (old, False)
    assert applied_profile(previous=None, current=None, name="p", running=False, spec_changed=True) == (None, False)


def test_render_shows_the_effective_spec_then_the_children_and_needs_the_profile_in_its_input():
    from sparkbook.render import RenderError, render_stream
    from sparkbook.settings import Settings

    example = (ROOT / "examples/notebookserver-profile.yaml").read_text()
    text = (ROOT / "manifests/profiles.yaml").read_text() + "\n---\n" + example
    docs = list(yaml.safe_load_all(render_stream(text, settings=Settings.from_env())))
    first = docs[0]
    assert (first["kind"], first["metadata"]["name"]) == ("NotebookServer", "dana")
    session = first["spec"]["spark"]["session"]
    assert (session["executor"]["memory"], session["dynamicAllocation"]["maxExecutors"]) == ("4g", 16)
    assert first["spec"]["resources"]["requests"] == {"cpu": "1", "memory": "4Gi"}
    kinds = [(d["kind"], d["metadata"]["name"]) for d in docs]
    assert ("StatefulSet", "dana") in kinds and ("SparkSession", "dana-spark") in kinds
    assert ("Pod", "dana-spark-driver") in kinds  # and what the owned session makes in turn
    with pytest.raises(RenderError, match="NotebookProfile 'spark-dynamic', which is not in the input"):
        render_stream(example, settings=Settings.from_env())
    over = example.replace("memory: 4g", "memory: 64g")
    with pytest.raises(RenderError, match="64g is more than NotebookProfile spark-dynamic allows"):
        render_stream((ROOT / "manifests/profiles.yaml").read_text() + "\n---\n" + over, settings=Settings.from_env())
