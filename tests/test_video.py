from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from emo_llama.faces import samples
from emo_llama.faces.video import MediaError, load_frames, nearest_frame_indices


@pytest.mark.parametrize(
    "fps, n_frames, expected",
    [
        (25.0, 100, [0, 25, 50, 75]),  # exactly 4 s
        (30.0, 95, [0, 30, 60, 90]),  # 3.17 s: instants 0..3
        (30000 / 1001, 300, [0, 30, 60, 90, 120, 150, 180, 210, 240, 270, 299]),  # 10.01 s at 29.97
        (30.0, 12, [0]),  # 0.4 s: shorter than one second gives one frame
        (25.0, 1, [0]),
    ],
)
def test_one_fps_picks_the_frame_nearest_each_second(fps, n_frames, expected):
    times = np.arange(n_frames) / fps
    picks = nearest_frame_indices(times, fps=1.0)
    assert picks == expected
    # every pick is within half a frame period of a whole second
    assert all(abs(times[i] - round(times[i])) <= 0.5 / fps + 1e-9 for i in picks[:-1])


def test_frame_cap_keeps_start_and_end():
    picks = nearest_frame_indices(np.arange(600) / 30.0, fps=1.0, max_frames=4)
    assert len(picks) == 4 and picks[0] == 0 and picks[-1] == 570


def _write_video(path: Path, n_frames: int, fps: int, size=64) -> None:
    """Frames whose brightness encodes their index, so we can tell which ones were picked."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        for i in range(n_frames):
            frame = np.full((size, size, 3), 2 * i, dtype=np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())


def test_decoded_video_returns_frames_at_1fps(tmp_path):
    path = tmp_path / "clip.mp4"
    _write_video(path, n_frames=75, fps=25)  # 3 s
    frames = load_frames(path)
    assert len(frames) == 3
    brightness = [int(round(f.mean() / 2)) for f in frames]
    assert brightness == pytest.approx([0, 25, 50], abs=2)
    assert frames[0].dtype == np.uint8 and frames[0].shape == (64, 64, 3)


def test_real_face_video_decodes(tmp_path):
    frames = load_frames(samples.carphone_video())
    assert len(frames) == 5 and frames[0].shape == (144, 176, 3)
    assert len(load_frames(samples.carphone_video(), max_frames=2)) == 2


def test_frame_folder_uses_natural_order(tmp_path):
    for index in (10, 2, 1):  # written out of order; lexicographic order would put 10 before 2
        Image.fromarray(np.full((8, 8, 3), index * 20, np.uint8)).save(tmp_path / f"{index}.png")
    frames = load_frames(tmp_path)
    assert [int(f[0, 0, 0]) // 20 for f in frames] == [1, 2, 10]


def test_corrupt_truncated_and_empty_videos_name_the_file(tmp_path):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(samples.carphone_video().read_bytes()[:20000])
    for bad, words in [(empty, "zero-length"), (garbage, "corrupt"), (truncated, "truncated")]:
        with pytest.raises(MediaError) as err:
            load_frames(bad)
        assert str(bad) in str(err.value) and words in str(err.value)


def test_missing_and_unknown_media_errors(tmp_path):
    with pytest.raises(MediaError, match="no such file"):
        load_frames(tmp_path / "nope.mp4")
    odd = tmp_path / "notes.txt"
    odd.write_text("hello")
    with pytest.raises(MediaError, match="unknown media type"):
        load_frames(odd)
    (tmp_path / "empty_dir").mkdir()
    with pytest.raises(MediaError, match="no image frames"):
        load_frames(tmp_path / "empty_dir")
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    with pytest.raises(MediaError, match="broken.jpg"):
        load_frames(broken)


def test_a_storage_error_stays_an_os_error_and_a_bad_file_a_media_error(tmp_path, monkeypatch):
    import errno

    import emo_llama.faces.video as video

    image = tmp_path / "face.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(image)
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"not really a video")

    def storage_failed(*args, **kwargs):
        raise OSError(errno.EIO, "Input/output error")  # a network disk that failed this once

    monkeypatch.setattr(video.Image, "open", storage_failed)
    with pytest.raises(OSError) as err:
        load_frames(image)
    assert not isinstance(err.value, MediaError)  # the feature store retries this; "unreadable" is for bad files
    monkeypatch.setattr(video.av, "open", lambda *a, **k: (_ for _ in ()).throw(av.error.OSError(errno.EIO, "EIO")))
    with pytest.raises(OSError) as err:
        load_frames(clip)
    assert not isinstance(err.value, MediaError)
    monkeypatch.undo()
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(image.read_bytes()[:40])
    with pytest.raises(MediaError, match="truncated.png"):
        load_frames(truncated)
    with pytest.raises(MediaError, match="clip.mp4"):
        load_frames(clip)
