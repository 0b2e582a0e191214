"""The model, importable without training or evaluation (open_clip's library/trainer split): ``encoders`` (the ECG
and cine ViTs, projection heads, MAE decoders, ``PTACLModel``), ``losses`` (global and local contrastive losses on
features), ``phases`` (where each ECG token and CMR frame lies in the cardiac cycle), ``geometry`` (phase-bin width
against token width, the soft-target sigma, bin occupancy), ``presets`` (each model preset with the preprocessing
preset whose cache it is built for). Nothing here imports ``training``, ``evaluation`` or ``preprocessing``.
"""
