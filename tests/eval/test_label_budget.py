from dataclasses import dataclass

import pytest
import yaml

from ppkt.config import apply_overrides, config_from_dict, config_to_dict, option
from ppkt.eval.splits import LabelBudget


@pytest.mark.parametrize(
    ("text", "kind", "amount", "canonical", "label", "slug"),
    [
        ("scenes:0.0625", "scenes", 0.0625, "scenes:0.0625", "6.25 % scenes", "scenes0.0625"),
        ("scenes:1.0", "scenes", 1.0, "scenes:1.0", "100 % scenes", "scenes1"),
        ("scenes:1", "scenes", 1.0, "scenes:1.0", "100 % scenes", "scenes1"),
        ("points:20", "points", 20.0, "points:20", "20 pts/scene", "points20"),
        ("points:2e2", "points", 200.0, "points:200", "200 pts/scene", "points200"),
    ],
)
def test_parse_good_text(text, kind, amount, canonical, label, slug):
    budget = LabelBudget.parse(text)
    assert (budget.kind, budget.amount) == (kind, amount) and type(budget.amount) is float
    assert budget.text == str(budget) == canonical and budget.label == label and budget.slug == slug
    assert LabelBudget.parse(budget.text) == budget


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("scenes", "expected 'scenes:FRACTION' or 'points:COUNT'"),
        ("pixels:3", "expected"),
        ("points:", "expected"),
        ("points:x", "expected"),
        ("scenes:nan", "expected"),
        ("scenes:2", "scene fraction must be in (0, 1]"),
        ("scenes:0", "scene fraction must be in (0, 1]"),
        ("points:0", "positive integer"),
        ("points:20.5", "positive integer"),
    ],
)
def test_parse_bad_text_names_it_in_one_line(text, problem):
    with pytest.raises(ValueError) as err:
        LabelBudget.parse(text)
    message = str(err.value)
    assert message.startswith(f"label budget {text!r}: ") and problem in message and "\n" not in message


def test_built_directly_it_is_checked_and_its_amount_is_a_float():
    assert LabelBudget("points", 50).amount == 50.0 and type(LabelBudget("points", 50).amount) is float
    with pytest.raises(ValueError, match="kind 'pixels'"):
        LabelBudget("pixels", 3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="positive integer"):
        LabelBudget("points", 0.5)


@dataclass(frozen=True)
class _Budgets:
    budgets: tuple[LabelBudget, ...] = option((LabelBudget("points", 20),), "budgets")


def test_a_config_field_is_parsed_once_and_written_back_as_text():
    cfg = apply_overrides(_Budgets(), {"budgets": "scenes:0.25,points:200"})
    assert cfg.budgets == (LabelBudget("scenes", 0.25), LabelBudget("points", 200))
    saved = yaml.safe_dump(config_to_dict(cfg))
    assert saved == "budgets:\n- scenes:0.25\n- points:200\n"
    assert config_from_dict(_Budgets, yaml.safe_load(saved)) == cfg
    with pytest.raises(ValueError, match=r"^budgets: label budget 'scenes:3': .*\(0, 1\]"):
        apply_overrides(_Budgets(), {"budgets": "scenes:3"})


def test_a_single_budget_field_is_one_option():
    from ppkt.config import leaf_fields

    @dataclass(frozen=True)
    class WithBudget:
        budget: LabelBudget = option(LabelBudget.parse("scenes:1.0"), "label budget")

    assert [name for name, _, _ in leaf_fields(WithBudget)] == ["budget"]
    cfg = apply_overrides(WithBudget(), {"budget": "points:20"})
    assert cfg.budget == LabelBudget.parse("points:20")
    assert config_from_dict(WithBudget, config_to_dict(cfg)) == cfg
