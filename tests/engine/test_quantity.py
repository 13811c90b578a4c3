import pytest

from eevee.engine.quantity import canonical_quantities, canonical_quantity


@pytest.mark.parametrize(
    "given, stored",
    [
        ("0.5", "500m"),
        ("1.5", "1500m"),
        ("2000m", "2"),
        (1, "1"),
        ("1000", "1k"),
        ("1500", "1500"),
        ("1024Mi", "1Gi"),
        ("1.5Gi", "1536Mi"),
        ("0.5Gi", "512Mi"),
        ("1536Ki", "1536Ki"),
        ("512", "512"),
        ("1e3", "1e3"),
        ("100M", "100M"),
        ("0", "0"),
        ("0.1Gi", "107374182400m"),
        ("0.0000000001", "1n"),
    ],
)
def test_quantities_take_the_form_the_api_server_stores(given, stored):
    assert canonical_quantity(given) == stored


@pytest.mark.parametrize("bad", ["lots", "1.2.3", "5XB", "", True])
def test_non_quantities_are_refused(bad):
    with pytest.raises(ValueError):
        canonical_quantity(bad)


def test_requirements_are_canonicalised_leaf_by_leaf():
    assert canonical_quantities({"limits": {"cpu": "0.5", "memory": "1024Mi"}}) == {
        "limits": {"cpu": "500m", "memory": "1Gi"}
    }
