"""regspace: sample, train and compare network design spaces (RegNet / AnyNet).

Importing the package is cheap on purpose: no numpy, torch or lightning here, so that
`regspace --help` starts fast. Import the submodules you need.
"""

__version__ = "0.1.0"
