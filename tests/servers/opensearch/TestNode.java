/*
 * TestNode: one OpenSearch 2.19 node in this JVM, for the reconciler's
 * integration tests. Plain HTTP on 127.0.0.1, single-node discovery, with
 * only the modules the tests need (HTTP transport, analysis, extra mappers,
 * ingest processors such as set for ingest pipelines, Painless for the
 * range summaries' scripted_metric). With -Dtestnode.painless=false the
 * node runs without Painless, as a cluster with scripts disabled does.
 *
 * Usage: java -cp CP TestNode HOME_DIR HTTP_PORT [key=value ...]
 * Extra key=value pairs become node settings, e.g. a tiny
 * thread_pool.write.queue_size to provoke real 429s.
 */
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collection;
import java.util.concurrent.CountDownLatch;

import org.opensearch.analysis.common.CommonAnalysisPlugin;
import org.opensearch.common.logging.LogConfigurator;
import org.opensearch.common.settings.Settings;
import org.opensearch.env.Environment;
import org.opensearch.index.mapper.MapperExtrasPlugin;
import org.opensearch.ingest.common.IngestCommonPlugin;
import org.opensearch.node.Node;
import org.opensearch.painless.PainlessPlugin;
import org.opensearch.plugins.Plugin;
import org.opensearch.transport.Netty4Plugin;

public class TestNode extends Node {
    TestNode(Environment env, Collection<Class<? extends Plugin>> plugins) {
        super(env, plugins, true);
    }

    public static void main(String[] args) throws Exception {
        if (args.length < 2) {
            System.err.println("usage: TestNode HOME_DIR HTTP_PORT [key=value ...]");
            System.exit(2);
        }
        Path home = Paths.get(args[0]).toAbsolutePath();
        int port = Integer.parseInt(args[1]);
        Settings.Builder b = Settings.builder()
            .put("path.home", home.toString())
            .put("path.data", home.resolve("data").toString())
            .put("path.logs", home.resolve("logs").toString())
            .put("cluster.name", "reconciler-test")
            .put("node.name", "node-1")
            .put("discovery.type", "single-node")
            .put("network.host", "127.0.0.1")
            .put("http.port", port)
            .put("transport.port", port + 100)
            .put("cluster.routing.allocation.disk.threshold_enabled", false)
            .put("action.auto_create_index", true);
        for (int i = 2; i < args.length; i++) {
            int eq = args[i].indexOf('=');
            if (eq <= 0) {
                System.err.println("TestNode: bad setting " + args[i]);
                System.exit(2);
            }
            b.put(args[i].substring(0, eq), args[i].substring(eq + 1));
        }
        Settings settings = b.build();
        LogConfigurator.registerErrorListener();
        LogConfigurator.configureWithoutConfig(settings);
        Environment env = new Environment(settings, home.resolve("config"));
        Collection<Class<? extends Plugin>> plugins = new ArrayList<>(Arrays.asList(
            Netty4Plugin.class, CommonAnalysisPlugin.class, MapperExtrasPlugin.class,
            IngestCommonPlugin.class));
        if (!"false".equals(System.getProperty("testnode.painless", "true")))
            plugins.add(PainlessPlugin.class);
        TestNode node = new TestNode(env, plugins);
        CountDownLatch done = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            try {
                node.close();
            } catch (Exception e) {
                e.printStackTrace();
            }
            done.countDown();
        }));
        node.start();
        System.err.println("TestNode: HTTP on 127.0.0.1:" + port);
        done.await();
    }
}
