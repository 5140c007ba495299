"""Secret configuration values are recognised at any depth and masked in every rendering."""

from etl_meta.masking import MASK, declare_secret_keys, has_secrets, is_sensitive_key, mask_value
from etl_meta.models import ComponentCreate, ComponentPublic
from etl_meta.types import utcnow


def test_sensitive_keys_are_matched_case_insensitively_inside_longer_names():
    for key in ("password", "DB_PASSWORD", "apiKey", "api-key", "client_secret", "Auth", "token"):
        assert is_sensitive_key(key), key
    for key in ("path", "table", "author", "token_type", "rows"):
        assert not is_sensitive_key(key), key


def test_masking_walks_nested_mappings_and_lists_without_touching_the_input():
    config = {
        "path": "in.csv",
        "server": {"host": "db", "password": "hunter2"},
        "targets": [{"name": "a", "api_key": "k1"}, {"name": "b"}],
        "credentials": {"user": "u", "key": "v"},
    }
    # No component type: keys any registered type declares are masked too; none declares these
    # (test types elsewhere declare ``conn``, so it is not used here).
    masked = mask_value(config)
    assert masked == {
        "path": "in.csv",
        "server": {"host": "db", "password": MASK},
        "targets": [{"name": "a", "api_key": MASK}, {"name": "b"}],
        "credentials": MASK,
    }
    assert config["server"]["password"] == "hunter2"
    assert has_secrets(config) and not has_secrets({"path": "x"})


def test_component_types_can_declare_extra_secret_keys():
    declare_secret_keys("test.warehouse_writer", ["conn"])
    config = {"conn": "postgresql://u:pw@h/db", "table": "t"}
    assert mask_value(config, component_type="test.warehouse_writer")["conn"] == MASK
    assert mask_value(config, component_type="test.other_type")["conn"] == config["conn"]
    # Type unknown (a run config override, an audit diff of a run): any declared key is masked.
    assert mask_value(config)["conn"] == MASK


def test_repr_str_and_json_of_models_never_show_secret_values():
    sentinel = "s3cr3t-sentinel-value"
    create = ComponentCreate(name="c", component_type="t", configuration={"password": sentinel})
    public = ComponentPublic(
        id=1,
        job_id=1,
        job_name="j",
        name="c",
        component_type="t",
        configuration={"nested": {"token": sentinel}, "path": "p"},
        config_version=1,
        created_at=utcnow(),
        updated_at=utcnow(),
    )
    for text in (repr(create), str(create), repr(public), str(public), public.model_dump_json()):
        assert sentinel not in text
    assert public.model_dump()["configuration"]["nested"]["token"] == MASK
    assert public.model_dump(include={"configuration"})["configuration"]["path"] == "p"
