"""The AIJob controller: each job's pods, Service and status.

`decide` compares a job with its pods and returns a plan (pure: no I/O), reading the pods through
`members` (which belong to the current attempt, what they are doing) and building the status with
`status` (an `AIJobStatus`, compared with the one the job carries: unchanged means no write);
`pods` builds the objects one attempt of a job is made of (pure); `admission` decides whether a
job's spec may have its pods made, from its tenant's quota (the book of admitted jobs);
`controller` carries plans out against the API server, one job at a time from a work queue, for
one leadership term.
"""
