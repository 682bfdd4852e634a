/*
 * TestNode: one OpenSearch 3.x node in this JVM, for the reconciler's
 * integration tests: the 3.x twin of tests/servers/opensearch/TestNode.java,
 * with the same settings, modules and arguments. Plain HTTP on 127.0.0.1,
 * single-node discovery, with only the modules the tests need (HTTP
 * transport, analysis, extra mappers, ingest processors such as set for
 * ingest pipelines, Painless for the range summaries' scripted_metric).
 * With -Dtestnode.painless=false the node runs without Painless, as a
 * cluster with scripts disabled does.
 *
 * What 3.0 changed for an embedded node: Node takes the classpath plugins
 * as PluginInfo descriptors, not classes; the modules' plugin classes are
 * named *ModulePlugin; the jars are Java 21 class files, so the node needs
 * a JDK 21 or newer (tools/test-servers takes tools/find-jdk's pick).
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
import java.util.Collections;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.stream.Collectors;

import org.opensearch.Version;
import org.opensearch.analysis.common.CommonAnalysisModulePlugin;
import org.opensearch.common.logging.LogConfigurator;
import org.opensearch.common.settings.Settings;
import org.opensearch.env.Environment;
import org.opensearch.index.mapper.MapperExtrasModulePlugin;
import org.opensearch.ingest.common.IngestCommonModulePlugin;
import org.opensearch.node.Node;
import org.opensearch.painless.PainlessModulePlugin;
import org.opensearch.plugins.Plugin;
import org.opensearch.plugins.PluginInfo;
import org.opensearch.transport.Netty4ModulePlugin;

public class TestNode extends Node {
    TestNode(Environment env, Collection<Class<? extends Plugin>> plugins) {
        super(env, describe(plugins), true);
    }

    /* a classpath plugin as 3.x's Node takes it: a descriptor whose
     * classname is the plugin class to load from this JVM's classpath */
    static List<PluginInfo> describe(Collection<Class<? extends Plugin>> plugins) {
        return plugins.stream()
            .map(p -> new PluginInfo(p.getName(), "classpath plugin", "NA", Version.CURRENT, "21",
                p.getName(), Collections.emptyList(), false))
            .collect(Collectors.toList());
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
            Netty4ModulePlugin.class, CommonAnalysisModulePlugin.class, MapperExtrasModulePlugin.class,
            IngestCommonModulePlugin.class));
        if (!"false".equals(System.getProperty("testnode.painless", "true")))
            plugins.add(PainlessModulePlugin.class);
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
