package sk8;

import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.ResultSet;
import java.sql.Statement;
import org.apache.spark.sql.SparkSession;

/**
 * Runs a small workload through sk8 with the JVM client and JDBC and prints one line per check:
 * {@code {"check": NAME, "ok": true|false, "detail": "..."}}. The session comes from the
 * environment, as {@link Sk8#connect} takes it.
 *
 * <pre>
 *   java -cp CLASSPATH sk8.Check NAME CHECK...
 *     jvm                  a SparkSession through the gateway
 *     jdbc                 jdbc:sc://… with the token
 *     jdbc-authentication  jdbc:sc://… sending the token as the older `authentication: Bearer …`
 * </pre>
 *
 * Exit status: 0 iff every check passed.
 */
public final class Check {
  public static void main(String[] args) {
    if (args.length < 2) {
      System.err.println("usage: sk8.Check SESSION_NAME jvm|jdbc|jdbc-authentication...");
      System.exit(2);
    }
    boolean all = true;
    for (int i = 1; i < args.length; i++) {
      all &= report(args[i], args[0]);
    }
    System.exit(all ? 0 : 1);
  }

  private static boolean report(String mode, String name) {
    boolean ok;
    String detail;
    try {
      detail = run(mode, name);
      ok = true;
    } catch (Exception e) {
      ok = false;
      detail = e.getClass().getName() + ": " + e.getMessage();
    }
    System.out.println("{\"check\": \"" + mode + "\", \"ok\": " + ok + ", \"detail\": \""
        + detail.replace("\\", "\\\\").replace("\"", "\\\"").replace("\n", "\\n") + "\"}");
    System.out.flush();
    return ok;
  }

  private static String run(String mode, String name) throws Exception {
    switch (mode) {
      case "jvm":
        return jvm(name);
      case "jdbc":
        try (Connection connection = Sk8.jdbc(name)) {
          return query(connection);
        }
      case "jdbc-authentication":
        return jdbcWithAuthenticationHeader(name);
      default:
        throw new IllegalArgumentException("unknown check " + mode);
    }
  }

  private static String jvm(String name) throws Exception {
    SparkSession spark = Sk8.connect(name);
    try {
      long count = spark.range(1000).filter("id % 2 = 0").count();
      if (count != 500) {
        throw new IllegalStateException("range(1000) has " + count + " even ids, not 500");
      }
      return "count=" + count + " version=" + spark.version();
    } finally {
      spark.close();
    }
  }

  /** The token as older JVM clients sent it: `authentication: Bearer …` metadata. */
  private static String jdbcWithAuthenticationHeader(String name) throws Exception {
    Sk8 sk8 = Sk8.fromEnvironment();
    String id = sk8.ready(System.getenv("SK8_TEAM"), envOr("SK8_ENV", "dev"), name);
    try (Connection connection = DriverManager.getConnection("jdbc:" + sk8.connectUrl(id, true))) {
      return query(connection);
    }
  }

  private static String query(Connection connection) throws Exception {
    try (Statement statement = connection.createStatement();
        ResultSet rows = statement.executeQuery("SELECT count(*) AS n, sum(id) AS s FROM range(100)")) {
      if (!rows.next()) {
        throw new IllegalStateException("no row");
      }
      long n = rows.getLong("n");
      long s = rows.getLong("s");
      if (n != 100 || s != 4950) {
        throw new IllegalStateException("count=" + n + " sum=" + s + ", want 100 and 4950");
      }
      return "count=" + n + " sum=" + s;
    }
  }

  private static String envOr(String name, String fallback) {
    String value = System.getenv(name);
    return value == null || value.isEmpty() ? fallback : value;
  }
}
