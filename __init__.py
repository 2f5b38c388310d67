"""hilt: local learning rules on emulated analog crossbars (aihwkit) and on an exact path.

Installed as one package, `hilt` (`hilt.analog`, `hilt.rules`, `hilt.devices`, `hilt.data`,
`hilt.experiments`, `hilt.cli`), mapped onto the folders at the repository's root
(pyproject.toml's package-dir): the repository is the package.
"""
