"""Seed 000 (LXCA's `tasks` command page, pubs.lenovo.com/lxca_scripting/pycli_tasks) as
the XClarity tests use it: its create example and its 28 job states.

The seed's text is not stored with the project; its examples are rebuilt from the
research notes' quotes (/work/shared/research/xclarity-rest.md): the create example's
empty `jobTitle` with `jobTitleKey`, its `jobSummary` object and logs of empty strings,
the client's own `createDate`, the spelling `rebootPersistet`, the multi-job update of
jobs 127 and 140, and the cancel of `-j 127, 140`.
"""

from conftest import unique

# Every LXCA job state, exact spelling, with the XAPI status it maps onto (docs/xclarity.md).
STATES = [
    ("Running", "pending"), ("Pending", "pending"), ("Initializing", "pending"),
    ("Validating", "pending"), ("Uploading", "pending"), ("Waiting", "pending"),
    ("Blocked", "pending"), ("RunningWithWarning", "pending"), ("RunningWithError", "pending"),
    ("Investigating", "pending"), ("Unknown", "pending"), ("Cancelling", "cancelling"),
    ("Complete", "success"), ("CompleteWithWarning", "success"), ("Skipped", "success"),
    ("Resolved", "success"), ("CompleteWithError", "failure"), ("Aborted", "failure"),
    ("Expired", "failure"), ("Interrupted", "failure"), ("InterruptedWithWarning", "failure"),
    ("InterruptedWithError", "failure"), ("Cancelled", "cancelled"),
    ("CancelledWithWarning", "cancelled"), ("CancelledWithError", "cancelled"),
    ("Stopped", "cancelled"), ("StoppedWithWarning", "cancelled"), ("StoppedWithError", "cancelled"),
]

# The state each XAPI status shows when nothing finer is kept.
DEFAULT_STATE = {"pending": "Running", "cancelling": "Cancelling", "success": "Complete",
                 "failure": "CompleteWithError", "cancelled": "Cancelled"}

# Fields the server assigns (LXCA does too): they do not round-trip.
SERVER_FIELDS = {"jobUID", "createDate", "endDate", "children"}


def seed_job(title_key=None):
    """Seed 000's create example, as the research notes describe it: an empty jobTitle with
    jobTitleKey/jobTitleBundle, a jobSummary object, logs with empty strings, the client's
    own createDate, and the seed's spelling `rebootPersistet`."""
    return {
        "jobTitle": "",
        "jobTitleKey": title_key or unique("com.lenovo.lxca.job.title"),
        "jobTitleBundle": "com.lenovo.lxca.job.bundle",
        "jobSummary": {
            "descriptionText": "Update firmware on node 1",
            "descriptionBundleKey": "com.lenovo.lxca.job.summary",
            "descriptionBundleName": "com.lenovo.lxca.bundle",
            "descriptionArgs": ["node 1"],
            "actionText": "",
            "severity": "Informational",
        },
        "jobCategory": "Firmware",
        "jobState": "Running",
        "percentage": 0,
        "createdBy": "USERID",
        "createDate": "2017-05-30T09:18:52Z",
        "startDate": "2017-05-30T09:18:52Z",
        "targetUUID": "7A3C2B10DEADBEEF",
        "args": ["node 1"],
        "logs": [{"logBundleKey": "", "logBundleName": "", "logDate": "", "logText": "",
                  "args": [], "severity": ""}],
        "cancelURL": "/jobs/cancel",
        "cancelRESTMethod": "PUT",
        "cancelRESTBody": {"cancelRequest": "true"},
        "expirationTimeOut": -1,
        "customUid": "my-job-7",
        "predefinedUid": "",
        "rebootPersistet": True,
        "stoppedBy": "",
        "uid": "",
        "weight": 1,
        "children": [],
    }
