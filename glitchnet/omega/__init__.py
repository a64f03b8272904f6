"""Gravity Spy's Omega scan, shared by the simulator and real strain: whitening, the multi-Q transform, rendering, PNG.

``whiten`` turns strain into a whitened spectrum, ``qtransform`` tiles and scans it as gwpy does, ``render`` draws
the four views as Kaggle's plot areas, and ``png`` writes them. :mod:`glitchnet.simulate` feeds it simulated strain,
:mod:`glitchnet.strain` real GWOSC strain.
"""
