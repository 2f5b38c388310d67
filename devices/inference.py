"""aihwkit inference configurations for robustness studies (programming noise, drift, read noise,
DAC/ADC): InferenceRPUConfig with its PCM-like noise model (Nandakumar et al., measured on PCM),
global drift compensation when asked, and the friendly IO overrides of `--set`."""

from __future__ import annotations


def inference_rpu_config(drift_compensation: bool = True, read_noise: float | None = None,
                         dac_bits: int | None = None, adc_bits: int | None = None):
    """aihwkit's defaults (out_noise 0.06, 7-bit DAC, 9-bit ADC), with the given values instead."""
    from aihwkit.inference import GlobalDriftCompensation, PCMLikeNoiseModel
    from aihwkit.simulator.configs import InferenceRPUConfig
    from aihwkit.simulator.parameters import MappingParameter

    from hilt.devices.presets import bits_to_res

    cfg = InferenceRPUConfig()
    cfg.noise_model = PCMLikeNoiseModel()
    cfg.drift_compensation = GlobalDriftCompensation() if drift_compensation else None
    cfg.mapping = MappingParameter(digital_bias=False, weight_scaling_omega=1.0)
    if read_noise is not None:
        cfg.forward.out_noise = read_noise
    if dac_bits is not None:
        cfg.forward.inp_res = bits_to_res(dac_bits)
    if adc_bits is not None:
        cfg.forward.out_res = bits_to_res(adc_bits)
    return cfg
