"""Importing bayescale is cheap and side-effect free (STYLE: dependencies point inward)."""

import subprocess
import sys


def test_import_has_no_side_effects():
    code = (
        "import sys, jax\n"
        "before = jax.config.jax_enable_x64\n"
        "import bayescale\n"
        "assert 'matplotlib' not in sys.modules, 'matplotlib imported'\n"
        "assert jax.config.jax_enable_x64 == before, 'x64 flag changed'\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_results_are_float64_without_global_x64():
    code = (
        "import numpy as np, bayescale as bs\n"
        "c = np.geomspace(1e18, 1e22, 12)\n"
        "fit = bs.fit_map(bs.laws.power_law, bs.from_arrays(bs.laws.power_law, y=1.7 + 900.0 * c**-0.15, C=c))\n"
        "assert abs(fit.point['alpha'] - 0.15) < 1e-7, fit.point\n"
        "print(np.asarray(bs.predict(fit.law, fit.point, {'C': c})).dtype)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "float64"
