"""A focused asyncio SIP client that keeps this server's users registered with the PBX.

Pure asyncio and the standard library (no Django): ``message`` parses and builds SIP
messages, ``digest`` answers digest challenges, ``client`` runs the registrations.
"""
