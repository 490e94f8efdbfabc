//! Just enough of Redis's protocol (RESP2) for the Redis peer: encode commands, send a batch
//! of them in one write (a pipeline), read their replies. A benchmark client wants exactly this
//! and no more: no pooling, no retries, no type conversions hiding the round trips.

use std::io;
use std::net::SocketAddr;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// One reply.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    Simple(String),
    Error(String),
    Integer(i64),
    /// `None` is RESP's null bulk string.
    Bulk(Option<Vec<u8>>),
    /// `None` is RESP's null array.
    Array(Option<Vec<Reply>>),
}

/// Appends one command (an array of bulk strings) to `out`.
pub fn encode_command(out: &mut Vec<u8>, args: &[&[u8]]) {
    out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for arg in args {
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
}

/// A reply, or the header of an array whose elements follow.
enum Token {
    Value(Reply),
    ArrayHeader(usize),
}

/// A connection to a Redis server.
pub struct RespConnection {
    stream: BufReader<TcpStream>,
}

impl RespConnection {
    pub async fn connect(address: SocketAddr) -> io::Result<RespConnection> {
        let stream = TcpStream::connect(address).await?;
        stream.set_nodelay(true)?;
        Ok(RespConnection {
            stream: BufReader::new(stream),
        })
    }

    /// Sends `commands` (encoded with `encode_command`, `count` of them) in one write and reads
    /// their `count` replies.
    pub async fn pipeline(&mut self, commands: &[u8], count: usize) -> io::Result<Vec<Reply>> {
        self.stream.get_mut().write_all(commands).await?;
        let mut replies = Vec::with_capacity(count);
        for _ in 0..count {
            replies.push(self.read_reply().await?);
        }
        Ok(replies)
    }

    async fn read_reply(&mut self) -> io::Result<Reply> {
        // Nested arrays are read with an explicit stack instead of recursion (async recursion
        // would need boxing): each frame is (elements read so far, elements expected).
        let mut frames: Vec<(Vec<Reply>, usize)> = Vec::new();
        loop {
            let mut reply = match self.read_token().await? {
                Token::Value(reply) => reply,
                Token::ArrayHeader(0) => Reply::Array(Some(Vec::new())),
                Token::ArrayHeader(length) => {
                    frames.push((Vec::with_capacity(length), length));
                    continue;
                }
            };
            // Close every array this reply completes.
            loop {
                match frames.last_mut() {
                    None => return Ok(reply),
                    Some((items, expected)) => {
                        items.push(reply);
                        if items.len() < *expected {
                            break;
                        }
                        let (items, _) = frames.pop().expect("a frame is open");
                        reply = Reply::Array(Some(items));
                    }
                }
            }
        }
    }

    async fn read_token(&mut self) -> io::Result<Token> {
        let line = self.read_line().await?;
        let (kind, rest) = line.split_at(1);
        let number = || {
            rest.parse::<i64>()
                .map_err(|_| bad_reply(&format!("bad length `{rest}`")))
        };
        Ok(Token::Value(match kind {
            "+" => Reply::Simple(rest.to_string()),
            "-" => Reply::Error(rest.to_string()),
            ":" => Reply::Integer(number()?),
            "$" => match number()? {
                -1 => Reply::Bulk(None),
                length => {
                    let mut bytes = vec![0; length as usize + 2];
                    self.stream.read_exact(&mut bytes).await?;
                    bytes.truncate(length as usize);
                    Reply::Bulk(Some(bytes))
                }
            },
            "*" => match number()? {
                -1 => Reply::Array(None),
                length => return Ok(Token::ArrayHeader(length as usize)),
            },
            _ => return Err(bad_reply(&format!("unknown reply type `{kind}`"))),
        }))
    }

    async fn read_line(&mut self) -> io::Result<String> {
        let mut line = Vec::new();
        self.stream.read_until(b'\n', &mut line).await?;
        if line.len() < 3 || !line.ends_with(b"\r\n") {
            return Err(bad_reply("a truncated line"));
        }
        line.truncate(line.len() - 2);
        String::from_utf8(line).map_err(|_| bad_reply("a line that is not UTF-8"))
    }
}

fn bad_reply(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("Redis sent {what}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    #[test]
    fn a_pipeline_reads_nested_arrays_nulls_and_simple_replies() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (mut socket, _) = listener.accept().unwrap();
            let mut request = [0u8; 64];
            let read = socket.read(&mut request).unwrap();
            socket
                .write_all(b"*2\r\n*1\r\n$1\r\na\r\n:5\r\n+OK\r\n$-1\r\n*0\r\n")
                .unwrap();
            request[..read].to_vec()
        });
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let replies = runtime.block_on(async {
            let mut connection = RespConnection::connect(address).await.unwrap();
            let mut command = Vec::new();
            encode_command(&mut command, &[b"GET", b"k"]);
            connection.pipeline(&command, 4).await.unwrap()
        });
        assert_eq!(server.join().unwrap(), b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n");
        assert_eq!(
            replies,
            vec![
                Reply::Array(Some(vec![
                    Reply::Array(Some(vec![Reply::Bulk(Some(b"a".to_vec()))])),
                    Reply::Integer(5),
                ])),
                Reply::Simple("OK".into()),
                Reply::Bulk(None),
                Reply::Array(Some(Vec::new())),
            ]
        );
    }
}
