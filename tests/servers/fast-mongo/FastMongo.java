/*
 * FastMongo: mongo-java-server with its in-memory backend on 127.0.0.1, a
 * fast MongoDB-wire source for the benchmarks (tools/bench --source fast).
 * Not a replacement for FerretDB in the integration tests: see
 * docs/TEST-SERVERS.md for what it does differently.
 *
 * Usage: java -cp CP FastMongo PORT
 * Runs until SIGTERM; the data lives in the heap and goes with the process.
 */
import de.bwaldvogel.mongo.MongoServer;
import de.bwaldvogel.mongo.backend.memory.MemoryBackend;

import java.util.concurrent.CountDownLatch;

public class FastMongo {
    public static void main(String[] args) throws Exception {
        if (args.length != 1) {
            System.err.println("usage: FastMongo PORT");
            System.exit(2);
        }
        int port = Integer.parseInt(args[0]);
        MongoServer server = new MongoServer(new MemoryBackend());
        CountDownLatch done = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            server.shutdownNow();
            done.countDown();
        }));
        server.bind("127.0.0.1", port);
        System.out.println("fast-mongo: listening on 127.0.0.1:" + port);
        System.out.flush();
        done.await();
    }
}
