"""Line-protocol peers for the tcp probe tests (asyncio, standard library):

    SMTP_PORT  "220 mail.test ESMTP ready"; EHLO lists STARTTLS before TLS and AUTH after;
               STARTTLS upgrades with CERT/KEY; QUIT closes
    BAD_PORT   "554 no service here", then closes
    TLS_PORT   TLS from the first byte, then "* OK ready"

    line_server.py SMTP_PORT BAD_PORT TLS_PORT CERT_PEM KEY_PEM
"""
import asyncio
import ssl
import sys


async def smtp(reader, writer, ctx):
    tls = False
    writer.write(b"220 mail.test ESMTP ready\r\n")
    await writer.drain()
    while True:
        line = await reader.readline()
        if not line:
            break
        cmd = line.strip().upper()
        if cmd.startswith(b"EHLO"):
            extra = b"250-AUTH PLAIN\r\n" if tls else b"250-STARTTLS\r\n"
            writer.write(b"250-mail.test\r\n" + extra + b"250 OK\r\n")
        elif cmd == b"STARTTLS" and not tls:
            writer.write(b"220 go ahead\r\n")
            await writer.drain()
            await writer.start_tls(ctx)
            tls = True
            continue
        elif cmd == b"QUIT":
            writer.write(b"221 bye\r\n")
            await writer.drain()
            break
        else:
            writer.write(b"500 what\r\n")
        await writer.drain()
    writer.close()


async def bad(reader, writer):
    writer.write(b"554 no service here\r\n")
    await writer.drain()
    writer.close()


async def banner(reader, writer):
    writer.write(b"* OK ready\r\n")
    await writer.drain()
    await reader.read(1024)
    writer.close()


async def main():
    smtp_port, bad_port, tls_port = (int(a) for a in sys.argv[1:4])
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(sys.argv[4], sys.argv[5])
    await asyncio.start_server(bad, "127.0.0.1", bad_port)
    await asyncio.start_server(banner, "127.0.0.1", tls_port, ssl=ctx)
    # The port tests wait on, last.
    server = await asyncio.start_server(lambda r, w: smtp(r, w, ctx), "127.0.0.1", smtp_port)
    async with server:
        await server.serve_forever()


asyncio.run(main())
