package sk8;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.SQLException;
import java.time.Duration;
import java.time.Instant;
import org.apache.spark.sql.SparkSession;

/**
 * A Spark Connect session through sk8, in one line: {@code SparkSession spark = Sk8.connect();}.
 *
 * <p>What {@code sk8.connect()} does for Python: creates the named session through sk8's REST
 * API (or starts it again if it stopped), waits until it is READY, and opens a Spark Connect
 * session through sk8's gateway with the caller's token, over TLS whenever there is a token
 * (as pyspark does; in plaintext the token goes as {@code authorization} metadata, which the
 * clients' own {@code ;token=} never does). {@link #jdbc} opens a JDBC connection ({@code jdbc:sc://…}) the same way,
 * as BI tools would.
 *
 * <p>Defaults come from the environment: {@code SK8_SERVER} (sk8's HTTP API, default
 * {@code http://127.0.0.1:8080}), {@code SK8_TOKEN} (none: sk8 without authentication),
 * {@code SK8_TEAM}, {@code SK8_ENV} (default {@code dev}) and {@code SK8_TLS} ({@code true} or
 * {@code false}; default: TLS when there is a token). Compiled with {@code javac} against the
 * Spark Connect client jars that ship in the pyspark package ({@code jars/connect-repl/}).
 */
public final class Sk8 {
  private static final ObjectMapper JSON = new ObjectMapper();
  private static final Duration READY_WAIT = Duration.ofMinutes(5);
  private static final Duration POLL = Duration.ofMillis(500);

  private final String server;
  private final String token;
  private final boolean tls;
  private final HttpClient http = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(10)).build();

  /** A client of the sk8 at {@code server}; {@code token} may be null (no authentication). */
  public Sk8(String server, String token, boolean tls) {
    this.server = server.replaceAll("/+$", "");
    this.token = token;
    this.tls = tls;
  }

  /** A client configured from {@code SK8_SERVER}, {@code SK8_TOKEN} and {@code SK8_TLS}. */
  public static Sk8 fromEnvironment() {
    String token = System.getenv("SK8_TOKEN");
    String tls = System.getenv("SK8_TLS");
    return new Sk8(
        env("SK8_SERVER", "http://127.0.0.1:8080"),
        token,
        tls == null || tls.isEmpty() ? token != null && !token.isEmpty() : Boolean.parseBoolean(tls));
  }

  /** The session {@code name} of {@code SK8_TEAM} in {@code SK8_ENV}, READY, as a SparkSession. */
  public static SparkSession connect(String name) throws IOException, InterruptedException {
    Sk8 sk8 = fromEnvironment();
    return sk8.sparkSession(sk8.ready(team(), env("SK8_ENV", "dev"), name));
  }

  /** The session {@code notebook} of {@code SK8_TEAM} in {@code SK8_ENV}. */
  public static SparkSession connect() throws IOException, InterruptedException {
    return connect("notebook");
  }

  /** A JDBC connection to the session {@code name} of {@code SK8_TEAM} in {@code SK8_ENV}. */
  public static Connection jdbc(String name) throws IOException, InterruptedException, SQLException {
    Sk8 sk8 = fromEnvironment();
    return DriverManager.getConnection(sk8.jdbcUrl(sk8.ready(team(), env("SK8_ENV", "dev"), name)));
  }

  /**
   * Creates the session (or starts it again), waits until it is READY and returns its id;
   * a session that FAILED, or is not READY within five minutes, is an error saying so.
   */
  public String ready(String team, String env, String name) throws IOException, InterruptedException {
    ObjectNode body = JSON.createObjectNode().put("team", team).put("env", env).put("name", name);
    JsonNode created = call(HttpRequest.newBuilder(uri("/v1/sessions"))
        .header("content-type", "application/json")
        .POST(HttpRequest.BodyPublishers.ofString(body.toString())));
    String id = created.path("id").asText();
    Instant deadline = Instant.now().plus(READY_WAIT);
    while (true) {
      JsonNode session = call(HttpRequest.newBuilder(uri("/v1/sessions/" + id)).GET());
      String state = session.path("state").asText();
      if (state.equals("READY")) {
        return id;
      }
      if (state.equals("FAILED") || !session.path("deletedAt").isMissingNode()) {
        throw new IOException("session " + id + " is " + state + ": " + session.path("reason").asText());
      }
      if (Instant.now().isAfter(deadline)) {
        throw new IOException("session " + id + " is still " + state + " after " + READY_WAIT);
      }
      Thread.sleep(POLL.toMillis());
    }
  }

  /** A Spark Connect session through the gateway to session {@code id}. */
  public SparkSession sparkSession(String id) throws IOException, InterruptedException {
    return org.apache.spark.sql.connect.SparkSession.builder().remote(connectUrl(id)).getOrCreate();
  }

  /** {@code sc://…} for session {@code id}: the gateway, the session, the token, TLS. */
  public String connectUrl(String id) throws IOException, InterruptedException {
    return connectUrl(id, false);
  }

  /**
   * The same; with {@code olderHeader} the token goes as {@code authentication: Bearer …}
   * metadata, the form older JVM clients sent, instead of {@code ;token=…}.
   */
  public String connectUrl(String id, boolean olderHeader) throws IOException, InterruptedException {
    JsonNode session = call(HttpRequest.newBuilder(uri("/v1/sessions/" + id)).GET());
    StringBuilder url = new StringBuilder(session.path("connectionString").asText());
    if (token != null && !token.isEmpty()) {
      // The clients send `;token=` only over TLS; in plaintext (a gateway on loopback, say)
      // the same `authorization` metadata goes as a plain parameter.
      String form = olderHeader ? ";authentication=Bearer%20" : tls ? ";token=" : ";authorization=Bearer%20";
      url.append(form).append(token);
    }
    url.append(";use_ssl=").append(tls);
    return url.toString();
  }

  /** {@code jdbc:sc://…} for session {@code id}. */
  public String jdbcUrl(String id) throws IOException, InterruptedException {
    return "jdbc:" + connectUrl(id);
  }

  private JsonNode call(HttpRequest.Builder request) throws IOException, InterruptedException {
    if (token != null && !token.isEmpty()) {
      request.header("authorization", "Bearer " + token);
    }
    HttpResponse<String> response =
        http.send(request.timeout(Duration.ofSeconds(30)).build(), HttpResponse.BodyHandlers.ofString());
    JsonNode body = JSON.readTree(response.body().isEmpty() ? "{}" : response.body());
    if (response.statusCode() >= 400) {
      // sk8's errors name the code, the message and, for bad input, the field.
      throw new IOException("sk8 answered " + response.statusCode() + ": " + body);
    }
    return body;
  }

  private URI uri(String path) {
    return URI.create(server + path);
  }

  private static String team() {
    String team = System.getenv("SK8_TEAM");
    if (team == null || team.isEmpty()) {
      throw new IllegalStateException("set SK8_TEAM to the team whose session to use");
    }
    return team;
  }

  private static String env(String name, String fallback) {
    String value = System.getenv(name);
    return value == null || value.isEmpty() ? fallback : value;
  }
}
