"""The JupyterHub spawner's form: what it shows for each NotebookProfile, how answers become
user_options, what a profile refuses, and the NotebookServer the spawner applies."""

import pytest

from sparkbook import hubform
from sparkbook.hubform import FormError

DYNAMIC = {
    "metadata": {"name": "spark-dynamic"},
    "spec": {
        "displayName": "Spark (Dynamic)",
        "description": "Spark grows and shrinks the executors with the work.",
        "default": True,
        "spark": {"dynamicAllocation": {"enabled": True, "minExecutors": 0, "maxExecutors": 10},
                  "executor": {"cores": 1, "memory": "2g"}},
        "overrides": [
            {"field": "spark.session.executor.memory", "max": "16g"},
            {"field": "spark.session.executor.cores", "max": 4},
            {"field": "spark.session.dynamicAllocation.maxExecutors", "max": 20},
            {"field": "spark.session.dynamicAllocation.minExecutors"},
            {"field": "spark.session.sparkConf"},
        ],
    },
}
PLAIN = {"metadata": {"name": "python"}, "spec": {"displayName": "Python only", "description": "No Spark."}}
PROFILES = [PLAIN, DYNAMIC]


def test_form_lists_profiles_with_the_default_checked_and_only_allowed_inputs():
    form = hubform.render_form(PROFILES)
    assert "Spark (Dynamic)" in form and "Spark grows and shrinks" in form and "Python only" in form
    assert 'value="spark-dynamic" checked' in form and 'value="python" checked' not in form
    assert 'name="spark-dynamic--spark.session.executor.memory"' in form
    assert 'placeholder="2g"' in form and "max 16g" in form
    assert '<textarea class="form-control" id="spark-dynamic--spark.session.sparkConf"' in form
    assert "python--" not in form


def test_options_from_form_reads_only_the_chosen_profile():
    form = {
        "profile": ["spark-dynamic"],
        "spark-dynamic--spark.session.executor.memory": ["4g"],
        "spark-dynamic--spark.session.dynamicAllocation.maxExecutors": ["8"],
        "spark-dynamic--spark.session.executor.cores": [""],
        "spark-dynamic--spark.session.sparkConf": ["spark.sql.shuffle.partitions=64\n\n# a note\nspark.a.b  x y"],
        "python--spark.session.executor.memory": ["99g"],
    }
    options = hubform.options_from_form(form)
    assert options == {"profile": "spark-dynamic", "spark": {
        "spark.session.executor.memory": "4g",
        "spark.session.dynamicAllocation.maxExecutors": 8,
        "spark.session.sparkConf": {"spark.sql.shuffle.partitions": "64", "spark.a.b": "x y"},
    }}
    assert hubform.validate(options, PROFILES) is DYNAMIC


def test_a_bad_property_line_is_named():
    with pytest.raises(FormError, match=r"line 2: '=oops' is not `key=value` or `key value`"):
        hubform.parse_spark_properties("a.b=1\n=oops")
    with pytest.raises(FormError, match="Executor cores: 'two' is not a whole number"):
        hubform.options_from_form({"profile": ["spark-dynamic"], "spark-dynamic--spark.session.executor.cores": ["two"]})


def test_beyond_bounds_and_unknown_profiles_are_refused_before_anything_is_created():
    with pytest.raises(FormError, match=r"executor.memory: 32g is more than NotebookProfile spark-dynamic allows \(at most 16g\)"):
        hubform.validate({"profile": "spark-dynamic", "spark": {"spark.session.executor.memory": "32g"}}, PROFILES)
    with pytest.raises(FormError, match="no server type 'gpu'"):
        hubform.validate({"profile": "gpu", "spark": {}}, PROFILES)
    with pytest.raises(FormError, match="Python only does not let you set"):
        hubform.validate({"profile": "python", "spark": {"spark.session.executor.cores": 2}}, PROFILES)


def test_server_names_are_dns_labels_and_distinct():
    assert hubform.server_name("{username}{servername}", "alice") == "alice"
    a = hubform.server_name("{username}{servername}", "Alice.B@x.org", "-work")
    b = hubform.server_name("{username}{servername}", "alice-b-x-org", "-work")
    assert a != b and a.startswith("alice-b-x-org-work-")
    assert hubform.server_name("{username}", "7up")[0].isalpha()
    assert len(hubform.server_name("{username}", "u" * 100)) <= 52


def test_the_notebookserver_has_the_profile_and_the_users_fields():
    options = {"profile": "spark-dynamic", "spark": {"spark.session.executor.memory": "4g",
                                                      "spark.session.sparkConf": {"spark.x": "1"}}}
    nbs = hubform.notebook_server(name="alice", namespace="jupyter", options=options,
                                  labels={"hub.jupyter.org/username": "alice"})
    assert nbs == {
        "apiVersion": "sparkbook.io/v1alpha1", "kind": "NotebookServer",
        "metadata": {"name": "alice", "namespace": "jupyter", "labels": {"hub.jupyter.org/username": "alice"}},
        "spec": {"profile": "spark-dynamic", "suspend": False,
                 "spark": {"session": {"executor": {"memory": "4g"}, "sparkConf": {"spark.x": "1"}}}},
    }


def test_the_default_server_drops_the_separator_and_named_servers_keep_it():
    assert hubform.server_name("jupyter-{username}--{servername}", "dana") == "jupyter-dana"
    assert hubform.server_name("jupyter-{username}--{servername}", "dana", "gpu") == "jupyter-dana--gpu"
    assert hubform.namespace_name("{hubnamespace}", "dana", hubnamespace="jupyterhub") == "jupyterhub"
    assert hubform.namespace_name("jupyter-{username}", "Dana@x") != hubform.namespace_name("jupyter-{username}", "dana-x")
    assert len(hubform.namespace_name("jupyter-{username}", "d" * 90)) <= 63
