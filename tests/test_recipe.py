"""Training recipes: the shipped files load, overrides apply and fail clearly, TOML round-trips."""

from pathlib import Path

import pytest

from extpose_sdk.engine.recipe import RecipeError, load_recipe, recipe_changes, recipe_from_dict

TRAINING = Path(__file__).resolve().parents[1] / "training"


@pytest.mark.parametrize("path", sorted(TRAINING.glob("*.toml")), ids=lambda p: p.stem)
def test_every_shipped_recipe_loads_and_round_trips(path, tmp_path):
    recipe = load_recipe(path)
    assert recipe.name == path.stem
    copy = tmp_path / "again.toml"
    copy.write_text(recipe.to_toml())
    assert load_recipe(copy) == recipe


def test_overrides_by_bare_and_dotted_key():
    recipe = recipe_from_dict({}, ["max_steps=7", "optim.lr=1e-3", "model.modalities=['rgb']",
                                   "mask=frame", "data.cache=some/folder"])
    assert recipe.optim.max_steps == 7
    assert recipe.optim.lr == 1e-3
    assert recipe.model.modalities == ["rgb"]
    assert recipe.model.mask == "frame"
    assert recipe.data.cache == "some/folder"
    assert recipe_from_dict({}, ["lr=1"]).optim.lr == 1.0  # an int widens to a float


def test_bad_overrides_name_the_problem():
    with pytest.raises(RecipeError, match="did you mean max_steps"):
        recipe_from_dict({}, ["max_step=3"])
    with pytest.raises(RecipeError, match="not key=value"):
        recipe_from_dict({}, ["max_steps"])
    with pytest.raises(RecipeError, match="optim.max_steps must be a int"):
        recipe_from_dict({}, ["max_steps=many"])
    with pytest.raises(RecipeError, match="unknown section 'optimiser'"):
        recipe_from_dict({}, ["optimiser.lr=1"])
    with pytest.raises(RecipeError, match="unknown key model.backbone_size"):
        recipe_from_dict({"model": {"backbone_size": 3}})


def test_recipe_changes_lists_each_changed_value_and_nothing_else():
    before = load_recipe("synthetic-hand-single")
    after = load_recipe("synthetic-hand-single", ["optim.lr=1e-4", "workers=2", "eval_every=250",
                                                  "model.options={ img_size = [64, 64] }"])
    assert recipe_changes(before.to_toml(), before.to_toml()) == []
    assert recipe_changes(before.to_toml(), after.to_toml()) == [
        "model.options: " + before.to_toml().split("options = ", 1)[1].split("\n")[0]
        + " -> { img_size = [64, 64] }",
        "data.workers: 1 -> 2",
        "optim.lr: 0.0003 -> 0.0001",
        "train.eval_every: 500 -> 250"]
    renamed = after.to_toml().replace('name = "synthetic-hand-single"', 'name = "mine"')
    assert recipe_changes(after.to_toml(), renamed) == ["name: 'synthetic-hand-single' -> 'mine'"]
    # a key only one side has (a recipe written by an older SDK)
    older = before.to_toml().replace("min_lr_ratio = 0.1\n", "")
    assert recipe_changes(older, before.to_toml()) == ["optim.min_lr_ratio: (none) -> 0.1"]
    assert recipe_changes(before.to_toml(), older) == ["optim.min_lr_ratio: 0.1 -> (none)"]
    # a whole section only one side has
    without_train = before.to_toml().split("[train]")[0]
    added = recipe_changes(without_train, before.to_toml())
    assert added[0] == "train.best_metric: (none) -> \"pa_mpjpe\"" and len(added) == 12
    assert all(c.startswith("train.") and ": (none) -> " in c for c in added)
    removed = recipe_changes(before.to_toml(), without_train)
    assert removed[0] == "train.best_metric: \"pa_mpjpe\" -> (none)" and len(removed) == 12


def test_a_missing_recipe_lists_the_available_ones():
    with pytest.raises(FileNotFoundError, match="synthetic-hand-base"):
        load_recipe("synthetic-hand-bse")


def test_printing_into_a_closed_pipe_is_not_an_error(tmp_path):
    import subprocess
    import sys

    command = (f"set -o pipefail; {sys.executable} -m extpose_sdk train synthetic-hand "
               f"--out {tmp_path / 'x'} --print-recipe | true")
    done = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "error" not in done.stderr
