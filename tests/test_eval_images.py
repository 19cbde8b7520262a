"""PNG writers: image grids (geometry and value mapping) and scatter plots (files that open)."""
import numpy as np
import pytest
import torch
from PIL import Image

from lvmgraph.eval.images import PlanarView, save_image_grid, save_latent_plot, save_points_plot


def open_png(path):
    with Image.open(path) as img:
        assert img.format == "PNG"
        img.load()
        return img.copy()


@pytest.mark.parametrize("n, nrow, rows, cols",
                         [(16, None, 4, 4), (10, None, 3, 4), (7, 3, 3, 3), (2, 8, 1, 2)])
def test_grid_size_follows_rows_columns_and_padding(tmp_path, n, nrow, rows, cols):
    h, w, pad = 6, 5, 2
    path = save_image_grid(torch.rand(n, 1, h, w), tmp_path / "grid.png", nrow=nrow, padding=pad)
    img = open_png(path)
    assert img.size == (cols * (w + pad) + pad, rows * (h + pad) + pad)  # PIL size is (width, height)
    assert img.mode == "L"


def test_rgb_grid_is_an_rgb_png_and_creates_parent_dirs(tmp_path):
    path = save_image_grid(torch.rand(4, 3, 8, 8), tmp_path / "a" / "b" / "rgb.png")
    assert path.exists() and open_png(path).mode == "RGB"


@pytest.mark.parametrize("value, value_range, expected", [
    (0.25, (0.0, 1.0), round(0.25 * 255)),
    (0.0, (-1.0, 1.0), round(0.5 * 255)),
    (7.0, (0.0, 1.0), 255),    # clamped from above
    (-3.0, (0.0, 1.0), 0),     # clamped from below
])
def test_constant_image_values_map_to_the_expected_byte(tmp_path, value, value_range, expected):
    path = save_image_grid(torch.full((1, 1, 4, 4), value), tmp_path / "c.png", value_range=value_range,
                           padding=0)
    pixels = np.asarray(open_png(path))
    assert pixels.shape == (4, 4)
    assert (pixels == expected).all()


def test_images_land_in_row_major_cells_with_white_separators(tmp_path):
    # image i is the constant i/5, laid out 3 per row
    images = torch.arange(5, dtype=torch.float32).div(5).reshape(5, 1, 1, 1).expand(5, 1, 2, 2)
    pixels = np.asarray(open_png(save_image_grid(images, tmp_path / "g.png", nrow=3, padding=1)))
    cell = lambda r, q: pixels[1 + 3 * r: 3 + 3 * r, 1 + 3 * q: 3 + 3 * q]  # noqa: E731
    for i in range(5):
        assert (cell(i // 3, i % 3) == round(i / 5 * 255)).all()
    assert (cell(1, 2) == 255).all()  # the missing sixth image is blank
    assert (pixels[0] == 255).all() and (pixels[:, 0] == 255).all()


def test_grid_rejects_wrong_channel_counts():
    with pytest.raises(ValueError, match="c = 1 or 3"):
        save_image_grid(torch.rand(2, 2, 4, 4), "unused.png")
    with pytest.raises(ValueError, match="c = 1 or 3"):
        save_image_grid(torch.rand(4, 4), "unused.png")


def test_points_plot_writes_a_png(tmp_path):
    g = torch.Generator().manual_seed(0)
    path = save_points_plot(torch.randn(300, 2, generator=g), tmp_path / "points.png",
                            reference=torch.randn(500, 2, generator=g), title="samples")
    img = open_png(path)
    assert path.stat().st_size > 1000 and min(img.size) > 100


def test_points_plot_projects_higher_dimensional_points(tmp_path):
    g = torch.Generator().manual_seed(0)
    path = save_points_plot(torch.randn(100, 5, generator=g), tmp_path / "points5.png",
                            reference=torch.randn(100, 5, generator=g))
    assert path.stat().st_size > 1000


@pytest.mark.parametrize("d", [1, 2, 8])
def test_latent_plot_writes_a_png_for_any_latent_size(tmp_path, d):
    g = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 3, (200,), generator=g)
    latents = torch.randn(200, d, generator=g) + labels[:, None].float()
    path = save_latent_plot(latents, labels, tmp_path / f"latent{d}.png",
                            prior_samples=torch.randn(400, d, generator=g), title="test codes",
                            class_names=["zero", "one", "two"])
    assert path.stat().st_size > 1000 and min(open_png(path).size) > 100


def test_latent_plot_without_labels_or_prior(tmp_path):
    path = save_latent_plot(np.random.default_rng(0).normal(size=(50, 2)), None, tmp_path / "plain.png")
    assert path.stat().st_size > 1000


def test_latent_plot_checks_label_count(tmp_path):
    with pytest.raises(ValueError, match="labels"):
        save_latent_plot(torch.zeros(5, 2), torch.zeros(4), tmp_path / "bad.png")


def test_pca_projection_keeps_the_dominant_directions():
    rng = np.random.default_rng(0)
    # variance 9 and 4 on axes 3 and 0, tiny elsewhere: the plane must be spanned by those two
    z = rng.normal(size=(500, 6)) * np.array([2.0, 0.01, 0.01, 3.0, 0.01, 0.01])
    view = PlanarView(z)
    projected = view(z)
    assert projected.shape == (500, 2)
    assert projected.var(axis=0).sum() == pytest.approx(z.var(axis=0).sum(), rel=1e-3)
    assert "PCA of 6-D" in view.note and "100%" in view.note


def test_a_latent_plot_of_a_single_test_example_is_drawn(tmp_path):
    # a user's image folder may hold out one test image: its encoding spans no plane
    view = PlanarView(np.ones((1, 5)))
    assert view(np.zeros((3, 5))).shape == (3, 2)
    path = save_latent_plot(torch.randn(1, 5), None, tmp_path / "one.png", prior_samples=torch.randn(1, 5))
    assert path.stat().st_size > 0
