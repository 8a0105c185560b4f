"""FHIR R4 prescriptions: a MedicationRequest, or a Bundle of them, read into one typed import. No I/O.

`import_fhir_prescription(body)` gives a `FhirImport` or raises `FhirRefused` naming every problem at a
JSON pointer into the body; `match_coded(line, catalogue)` finds the catalogue medication a line's
checked codes name exactly.
"""

from prescription_service.fhir.codes import ATC, PZN, RXNORM, code_problem, is_checked_system, match_coded
from prescription_service.fhir.document import MAX_LINES
from prescription_service.fhir.model import Code, FhirImport, FhirRefused, ImportedLine, Prescriber, Problem
from prescription_service.fhir.reader import import_fhir_prescription

__all__ = [
    "ATC",
    "MAX_LINES",
    "PZN",
    "RXNORM",
    "Code",
    "FhirImport",
    "FhirRefused",
    "ImportedLine",
    "Prescriber",
    "Problem",
    "code_problem",
    "import_fhir_prescription",
    "is_checked_system",
    "match_coded",
]
