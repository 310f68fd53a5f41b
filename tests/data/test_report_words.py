from ppkt.data.report import every_kth_frame


def test_frame_skip_in_words():
    assert every_kth_frame(1) == "every frame"  # not "every 1th frame"
    assert [every_kth_frame(k) for k in (2, 3, 4, 11, 12, 13, 21, 22, 25, 101)] == [
        "every 2nd frame", "every 3rd frame", "every 4th frame", "every 11th frame", "every 12th frame",
        "every 13th frame", "every 21st frame", "every 22nd frame", "every 25th frame", "every 101st frame",
    ]  # fmt: skip
