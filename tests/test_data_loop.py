"""The closed data loop: ratings in, a new data set out (engine level)."""

from __future__ import annotations

import pytest
import torch

from aigc_core import data_loop
from aigc_core.data.catalog import dataset_info, load_dataset
from aigc_core.data.text import split
from aigc_core.errors import UserError
from aigc_core.runs import api
from aigc_core.sample import load_for_sampling
from tests.tiny_runs import QUIET, dcgan_run, finished, tiny_lines, tiny_table


@pytest.fixture(scope="module")
def gan():
    run = dcgan_run()
    trainer, _, step = load_for_sampling(run.id)
    return run, trainer, step


def test_liked_images_join_the_original_set_pixel_for_pixel_and_disliked_ones_do_not(gan):
    run, trainer, step = gan
    images = trainer.sample(6, seed=7)
    for i in (0, 3):
        data_loop.rate_image(run.id, images[i], 1, step=step, seed=7, index=i, knobs={"truncation": 1.0})
    data_loop.rate_image(run.id, images[5], 0, step=step, seed=7, index=5, knobs={"truncation": 1.0})
    assert data_loop.rating_counts(run.id) == {"up": 2, "down": 1, "total": 3}

    plan = data_loop.loop_plan(run.id)
    assert (plan.original_count, plan.added, plan.total) == (48, 2, 50)

    info, _ = data_loop.make_dataset_from_liked(run.id, name="loop_images")
    made = load_dataset("loop_images")
    assert info.summary["count"] == 50 and made.images.shape == (50, 1, 28, 28)
    original = load_dataset(run.dataset)
    assert torch.equal(made.images[:48], original.images)
    expected = images[[0, 3]].mul(255).round().to(torch.uint8)
    assert torch.equal(made.images[48:], expected)
    # the Train page can use it like any upload
    assert dataset_info("loop_images").kind == "image"
    api.make_config("dcgan", "loop_images", preset="Quick")


def test_a_liked_sample_keeps_its_seed_and_index_so_it_can_be_made_again(gan):
    run, trainer, step = gan
    images = trainer.sample(3, seed=11, truncation=0.5)
    item = data_loop.rate_image(run.id, images[2], 1, step=step, seed=11, index=2, knobs={"truncation": 0.5})
    entry = next(x for x in data_loop.liked(run.id) if x["item"] == item)
    again = trainer.sample(entry["index"] + 1, entry["seed"], **entry["knobs"])[entry["index"]]
    assert entry["step"] == step and torch.equal(again, images[2])
    assert entry["path"].is_file()


def test_taking_a_thumbs_up_back_forgets_the_rating_and_the_kept_image(gan):
    run, trainer, step = gan
    image = trainer.sample(1, seed=99)[0]
    item = data_loop.rate_image(run.id, image, 1, step=step, seed=99, index=0)
    path = next(x["path"] for x in data_loop.liked(run.id) if x["item"] == item)
    data_loop.unrate(run.id, item)
    assert item not in data_loop.ratings_by_item(run.id)
    assert not path.exists()


def test_turning_a_thumbs_up_into_a_thumbs_down_removes_the_kept_image(gan):
    run, trainer, step = gan
    image = trainer.sample(1, seed=98)[0]
    data_loop.rate_image(run.id, image, 1, step=step, seed=98, index=0)
    before = data_loop.loop_plan(run.id).added
    data_loop.rate_image(run.id, image, 0, step=step, seed=98, index=0)
    assert data_loop.loop_plan(run.id).added == before - 1


def test_without_a_thumbs_up_no_data_set_is_made_and_the_message_says_what_to_do(fresh_home):
    run = dcgan_run(steps=10)
    with pytest.raises(UserError, match="thumbs up"):
        data_loop.make_dataset_from_liked(run.id)


def test_a_new_data_set_never_replaces_an_existing_one(gan):
    run, trainer, step = gan
    data_loop.rate_image(run.id, trainer.sample(1, seed=5)[0], 1, step=step, seed=5, index=0)
    data_loop.make_dataset_from_liked(run.id, name="loop_taken")
    with pytest.raises(UserError, match="already exists"):
        data_loop.make_dataset_from_liked(run.id, name="loop_taken")
    assert data_loop.suggest_name("loop_taken", {"loop_taken-liked"}) == "loop_taken-liked-2"


def test_liked_lines_are_added_once_before_the_held_out_tail_and_copies_are_left_out():
    run = finished("bigram", tiny_lines(), 10)
    original = load_dataset(run.dataset)
    data_loop.rate_text(run.id, "zora", 1, step=10, seed=0, index=0)
    data_loop.rate_text(run.id, "anna", 1, step=10, seed=0, index=1)       # already a training item
    data_loop.rate_text(run.id, "zora", 1, step=10, seed=1, index=0)       # the same item liked twice
    data_loop.rate_text(run.id, "qqq", 0, step=10, seed=0, index=2)        # not liked
    plan = data_loop.loop_plan(run.id)
    assert plan.added == 1 and plan.skipped == {"already in the data set": 2}
    info, _ = data_loop.make_dataset_from_liked(run.id, name="loop_lines")
    made = load_dataset("loop_lines")
    assert made.mode == "lines" and made.text.split("\n") == ["zora"] + original.text.split("\n")
    train_text, _ = split(made)
    assert "zora" in train_text.split("\n")


def test_liked_passages_of_stream_text_come_before_the_original_text(fresh_home):
    from aigc_core.data.base import TextData
    from aigc_core.data.catalog import save_uploaded

    save_uploaded(TextData("tiny_stream", "the cat sat on the mat. " * 20))
    run = finished("bigram", "tiny_stream", 10)
    data_loop.rate_text(run.id, "the mat sat", 1, step=10, seed=0, index=0)
    data_loop.make_dataset_from_liked(run.id, name="loop_stream")
    made = load_dataset("loop_stream")
    assert made.mode == "stream" and made.text.startswith("the mat sat\n\nthe cat sat")


def test_liked_table_rows_join_the_table_with_its_column_types():
    run = finished("tab_gan", tiny_table(), 10, hidden=16, batch_size=20)
    trainer, _, step = load_for_sampling(run.id)
    rows = trainer.sample(5, seed=3, condition={"buy": True})
    for i in (1, 4):
        data_loop.rate_row(run.id, data_loop.row_dict(rows, i), 1, step=step, seed=3, index=i, condition={"buy": True})
    info, plan = data_loop.make_dataset_from_liked(run.id, name="loop_rows")
    made = load_dataset("loop_rows")
    original = load_dataset(run.dataset)
    assert len(made) == len(original) + 2 and plan.unit == "rows"
    assert made.column_types == original.column_types and made.label_column == "buy"
    assert str(made.frame["views"].dtype).startswith("int") and made.frame["buy"].dtype == bool
    assert made.frame.tail(2)["buy"].tolist() == [True, True]
    assert made.frame.tail(2)["views"].tolist() == rows.iloc[[1, 4]]["views"].tolist()


def test_point_sets_have_no_data_loop_and_say_so():
    run = finished("tiny_line", "tiny_points", 10)
    assert "no data loop" in data_loop.loop_plan(run.id).notes[0]
    with pytest.raises(UserError, match="no data loop"):
        data_loop.make_dataset_from_liked(run.id)


def test_a_data_set_made_from_liked_samples_trains_a_new_run(gan):
    run, trainer, step = gan
    data_loop.rate_image(run.id, trainer.sample(1, seed=21)[0], 1, step=step, seed=21, index=0)
    data_loop.make_dataset_from_liked(run.id, name="loop_trains")
    cfg = api.make_config("dcgan", "loop_trains", model_set=dict(ngf=8, ndf=8, nz=16, batch_size=8),
                          train_set={"steps": 5, "log_every": 5})
    assert api.run_in_foreground(cfg, **QUIET).status == "completed"


def test_liked_samples_can_count_several_times_so_a_few_weigh_against_thousands(gan):
    run, trainer, step = gan
    data_loop.rate_image(run.id, trainer.sample(1, seed=31)[0], 1, step=step, seed=31, index=0)
    plan = data_loop.loop_plan(run.id, repeat=5)
    assert plan.added == plan.used * 5 and plan.total == 48 + plan.used * 5
    assert f"{plan.used} liked samples × 5 copies ({plan.used * 5} images)" in plan.describe()
    assert plan.share == pytest.approx(plan.used * 5 / plan.total)
    data_loop.make_dataset_from_liked(run.id, name="loop_repeat", repeat=5)
    made = load_dataset("loop_repeat")
    assert len(made) == plan.total
    liked_block = made.images[48:48 + plan.used]
    assert torch.equal(made.images[48 + plan.used:48 + 2 * plan.used], liked_block)  # the second copy
    with pytest.raises(UserError, match="1 to 100 times"):
        data_loop.loop_plan(run.id, repeat=0)
