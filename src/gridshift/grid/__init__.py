"""Interfaces to the power grid: utility demand-response programs that send grid events to a site."""

from gridshift.grid.openadr import (
    GridShiftVen,
    OpenADRConversion,
    OpenADRError,
    convert_openadr_event,
    gridevents_from_openadr,
)

__all__ = ["GridShiftVen", "OpenADRConversion", "OpenADRError", "convert_openadr_event", "gridevents_from_openadr"]
