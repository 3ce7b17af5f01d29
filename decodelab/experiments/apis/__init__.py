"""REST API of the workbench (one APIView per operation), mounted under /api/v1/."""
