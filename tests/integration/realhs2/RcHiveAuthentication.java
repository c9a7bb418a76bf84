// The CUSTOM HiveServer2 auth provider of the seed post ("Add Username password auth to Hive"),
// reproduced so the integration suite authenticates exactly the way production does: user
// `rcapp`, the password checked against an MD5 hex digest, compared case-insensitively, and
// an AuthenticationException on any mismatch (HiveServer2 turns it into the SASL error
// "Error validating the login" the check must classify as auth, not as a broken server).
//
// Differences from the seed, and why:
// - no javax.xml.bind (gone from Java 11+): the hex digest is built by hand;
// - the expected digest can be overridden from hive-site.xml (`rc.hive.auth.md5.<user>`)
//   through Configurable.setConf, so tests use a random per-session password instead of one
//   whose plaintext is unknown. Without the setting the seed's digest is used.
// Kept in the default package: hive.server2.custom.authentication.class=RcHiveAuthentication.

import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.Hashtable;
import java.util.Map;

import javax.security.sasl.AuthenticationException;

import org.apache.hadoop.conf.Configurable;
import org.apache.hadoop.conf.Configuration;
import org.apache.hive.service.auth.PasswdAuthenticationProvider;

public class RcHiveAuthentication implements PasswdAuthenticationProvider, Configurable {
    static final String PREFIX = "rc.hive.auth.md5.";

    private final Hashtable<String, String> store = new Hashtable<>();
    private Configuration conf;

    public RcHiveAuthentication() {
        store.put("rcapp", "7451d491e7052ac047caf36a5272a1bf");
    }

    @Override
    public void setConf(Configuration conf) {
        this.conf = conf;
        if (conf == null) {
            return;
        }
        for (Map.Entry<String, String> e : conf.getValByRegex("^" + PREFIX.replace(".", "\\.") + ".+").entrySet()) {
            store.put(e.getKey().substring(PREFIX.length()), e.getValue().trim());
        }
    }

    @Override
    public Configuration getConf() {
        return conf;
    }

    @Override
    public void Authenticate(String user, String password) throws AuthenticationException {
        String storedPasswd = user == null ? null : store.get(user);
        // MD5 is just hex: ignore case.
        if (storedPasswd == null || password == null || !storedPasswd.equalsIgnoreCase(getMd5(password))) {
            throw new AuthenticationException("RcHiveAuthentication: Error validating user");
        }
    }

    /** The MD5 of the input as hex; empty if MD5 is unavailable (then nothing authenticates). */
    public static String getMd5(String input) {
        try {
            byte[] digest = MessageDigest.getInstance("MD5").digest(input.getBytes(StandardCharsets.UTF_8));
            StringBuilder hex = new StringBuilder(digest.length * 2);
            for (byte b : digest) {
                hex.append(Character.forDigit((b >> 4) & 0xF, 16)).append(Character.forDigit(b & 0xF, 16));
            }
            return hex.toString().toUpperCase();
        } catch (NoSuchAlgorithmException e) {
            return "";
        }
    }

    // package access for unit tests
    Hashtable<String, String> getStore() {
        return store;
    }
}
