"""The probe: inputs, the tape loop with statistics reduced as they stream, evidence per layer."""
