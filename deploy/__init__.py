"""Deployment tooling: the SAM template's IAM policy generator/auditor and the Lambda packager.

Not shipped in the Lambda zip (deploy/build.py copies only monitor/, checks/, recover/).
"""
